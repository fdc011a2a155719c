"""privft report: every section from run files, and nothing from the data."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from privft.cli import app

SECRET = "482913"
PERSON = "Dana Whitfield"


def write_run(folder, recipe="dp_lora", *, evaluated=True, status="completed", data=None):
    folder.mkdir(parents=True)
    config = {
        "recipe": recipe,
        "data": str(data or folder / "data"),
        "out": str(folder),
        "model": "builtin",
        "epochs": 1,
        "learning_rate": 0.002,
        "seed": 0,
        "lora": {"r": 8, "alpha": 16.0},
        "dp": {"epsilon": 8.0, "max_grad_norm": 1.0},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    cost = {
        "steps": 10,
        "train_time_s": 11.9,
        "peak_memory_mb": 560.5,
        "memory_method": "sampled_rss",
        "trainable_params": 6144,
        "total_params": 48896,
    }
    info = {"recipe": recipe, "status": status, "error": None, "cost": cost}
    if status == "failed":
        info["error"] = "RuntimeError: out of memory"
    (folder / "run_info.json").write_text(json.dumps(info))
    if recipe.startswith("dp"):
        ledger = {
            "accountant": "rdp",
            "noise_multiplier": 0.534,
            "epsilon": 7.995,
            "target_epsilon": 8.0,
            "delta": 0.0012,
            "steps": 10,
            "planned_steps": 10,
        }
        (folder / "privacy.json").write_text(json.dumps(ledger))
    if evaluated:
        (folder / "results.json").write_text(json.dumps(RESULTS))
    return folder


RESULTS = {
    "memorization": {"sensitive_gap": 0.0421, "sensitive_gap_ci95": [0.0102, 0.0733]},
    "utility": {
        "finetuned_test_nonsensitive_nll_nats": 3.25,
        "base_test_nonsensitive_nll_nats": 3.5,
    },
    "membership": {"all_tokens": {"loss": {"auc": 0.61, "auc_ci95": [0.55, 0.67]}}},
    "exposure": {
        "canaries": [
            {"id": "canary-00", "repetitions": 0, "exposure": 1.1, "space_size": 1000000},
            {"id": "canary-01", "repetitions": 16, "exposure": 12.5, "space_size": 1000000},
            {"id": "canary-02", "repetitions": 16, "exposure": 9.5, "space_size": 1000000},
        ],
        "mean_by_repetitions": {"0": 1.1, "16": 11.0},
        "max_exposure": {"0": 1.1, "16": 12.5},
    },
}


def report(run):
    return CliRunner().invoke(app, ["report", str(run)], env={"COLUMNS": "160"})


def test_dp_run_sections(tmp_path):
    result = report(write_run(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    for text in ("settings", "training cost", "privacy ledger", "measures", "canary exposure"):
        assert text in result.output


def test_ledger_shows_epsilon(tmp_path):
    result = report(write_run(tmp_path / "run"))
    assert "7.995 (target 8)" in result.output


def test_measure_with_interval(tmp_path):
    result = report(write_run(tmp_path / "run"))
    assert "0.0421  [0.0102, 0.0733]" in result.output


def test_exposure_per_count(tmp_path):
    result = report(write_run(tmp_path / "run"))
    row = next(line for line in result.output.splitlines() if "│ " in line and " 16 │" in line)
    assert "12.5" in row
    assert "19.93" in row


def test_trainable_share(tmp_path):
    result = report(write_run(tmp_path / "run"))
    assert "6,144 (12.6% of 48,896)" in result.output


def test_no_text_or_secrets(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"id": "a", "text": f"I am {PERSON}"}) + "\n")
    (data / "canaries.jsonl").write_text(json.dumps({"id": "canary-01", "secret": SECRET}) + "\n")
    result = report(write_run(tmp_path / "run", data=data))
    assert SECRET not in result.output
    assert PERSON not in result.output


def test_full_run_no_guarantee(tmp_path):
    result = report(write_run(tmp_path / "run", "full"))
    assert "none: full is not differentially private" in result.output


def test_unevaluated_names_eval(tmp_path):
    result = report(write_run(tmp_path / "run", evaluated=False))
    assert result.exit_code == 0, result.output
    assert "not evaluated yet: run `privft eval" in result.output


def test_failed_run_shows_error(tmp_path):
    result = report(write_run(tmp_path / "run", status="failed", evaluated=False))
    assert "error: RuntimeError: out of memory" in result.output


def test_not_run_folder(tmp_path):
    result = report(tmp_path)
    assert result.exit_code == 1
    assert f"is {tmp_path} a privft run folder?" in result.output


def test_bad_results_json(tmp_path):
    run = write_run(tmp_path / "run")
    (run / "results.json").write_text("{broken")
    result = report(run)
    assert result.exit_code == 1
    assert "results.json is not valid JSON" in result.output


@pytest.mark.slow
def test_real_run_report(tmp_path, tiny_model_dir, tiny_data_dir):
    from privft.config import TrainConfig
    from privft.evaluation import evaluate_run
    from privft.recipes import train

    run = tmp_path / "run"
    config = TrainConfig(
        recipe="dp_lora",
        data=str(tiny_data_dir),
        out=str(run),
        model=str(tiny_model_dir("gpt_neox")),
        epochs=1,
        batch_size=8,
        max_length=48,
    )
    train(config, show_progress=False)
    evaluate_run(run, exposure_method="sampled", exposure_samples=100, show_progress=False)
    result = report(run)
    assert result.exit_code == 0, result.output
    assert "MIA AUC, loss attack, all tokens" in result.output
    assert "2 │" in result.output
    assert "482913" not in result.output
