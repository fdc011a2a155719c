import json
import math

import pytest
from typer.testing import CliRunner

from privft.cli.app import app
from privft.evaluation import evaluate_pair
from privft.evaluation.runner import flat_measures

QUICK = {"exposure_method": "sampled", "exposure_samples": 200, "show_progress": False}


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory, tiny_model_dir, tokenizer_dir):
    """A second tiny GPT-NeoX (other seed) with the same tokenizer, standing in for a fine-tune."""
    from conftest import build_tiny_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    folder = tmp_path_factory.mktemp("finetuned")
    build_tiny_model("gpt_neox", len(tokenizer), seed=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pair_results(tmp_path_factory, finetuned_dir, tiny_model_dir):
    from conftest import write_tiny_data

    data = write_tiny_data(tmp_path_factory.mktemp("pair-data"))
    out = tmp_path_factory.mktemp("pair-out")
    results = evaluate_pair(str(finetuned_dir), str(tiny_model_dir("gpt_neox")), data, out, **QUICK)
    return results, out


def test_pair_writes_results(pair_results):
    results, out = pair_results
    written = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert written["measures"]["mia_auc"] == pytest.approx(results["measures"]["mia_auc"])
    assert written["run"]["recipe"] is None


def test_pair_measures_named(pair_results):
    measures = pair_results[0]["measures"]
    for name in (
        "sensitive_gap",
        "sensitive_gap_person",
        "sensitive_gap_email",
        "mia_zlib_auc",
        "mia_min_k_auc",
        "mia_min_k_plus_plus_tpr_at_0_1pct_fpr",
        "mia_sensitive_calibrated_auc",
        "extraction_train_share",
        "extraction_base_test_share",
        "extraction_canary_r2_share",
        "exposure_r2",
        "exposure_excess_r2",
        "memorized_spans",
        "recitation_share",
    ):
        assert name in measures, name


def test_pair_measures_are_numbers(pair_results):
    for name, value in pair_results[0]["measures"].items():
        assert value is None or math.isfinite(value), name


def test_pair_sizes_from_model(pair_results):
    # 24 training records minus none (the canary insertions are excluded), 12 test records.
    loss = pair_results[0]["membership"]["all_tokens"]["loss"]
    assert loss["members"] == 24
    assert loss["nonmembers"] == 12


def test_flat_measures_keep_legacy_names(pair_results):
    results = pair_results[0]
    measures = flat_measures(results)
    assert measures["mia_auc"] == results["membership"]["all_tokens"]["loss"]["auc"]
    assert measures["mia_loss_auc"] == measures["mia_auc"]


def test_vocabulary_mismatch_rejected(tmp_path, tiny_model_dir, tiny_data_dir):
    from conftest import build_tiny_model
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["other words entirely"] * 5, trainers.BpeTrainer(vocab_size=300))
    other = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="o", pad_token="o")
    folder = tmp_path / "other"
    build_tiny_model("gpt_neox", len(other)).save_pretrained(folder)
    other.save_pretrained(folder)
    with pytest.raises(ValueError, match="different vocabularies"):
        evaluate_pair(
            str(folder), str(tiny_model_dir("gpt_neox")), tiny_data_dir, tmp_path, **QUICK
        )


def test_cli_pair(tmp_path, finetuned_dir, tiny_model_dir, tiny_data_dir):
    out = tmp_path / "out"
    args = ["eval", "--model", str(finetuned_dir), "--base", str(tiny_model_dir("gpt_neox"))]
    args += ["--data", str(tiny_data_dir), "--out", str(out), "--exposure", "skewnorm"]
    args += ["--exposure-samples", "200", "--extraction-records", "5", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert written["exposure"]["methods"] == ["skewnorm"]
    assert written["extraction"]["max_records_per_split"] == 5


def test_cli_pair_needs_base(tmp_path, finetuned_dir, tiny_data_dir):
    args = ["eval", "--model", str(finetuned_dir), "--data", str(tiny_data_dir)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing --base" in result.output
