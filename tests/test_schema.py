"""results.json against its JSON Schema: real files from a DP-LoRA run and a model pair."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from privft.config import DPSettings, LoRASettings, TrainConfig
from privft.evaluation import evaluate_pair, evaluate_run
from privft.evaluation.runner import SCHEMA_VERSION
from privft.recipes import train
from privft.schemas import (
    RESULTS_SCHEMA_VERSION,
    SchemaError,
    results_schema,
    validate_results,
    validate_results_file,
)

jsonschema = pytest.importorskip(
    "jsonschema", reason='jsonschema missing: pip install "privft[test]"'
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
EVAL = {"exposure_method": "sampled", "exposure_samples": 50, "show_progress": False}


@pytest.fixture(scope="module")
def written(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """results.json of a two-step DP-LoRA run, and of its adapter evaluated against the base."""
    from conftest import write_tiny_data

    data = write_tiny_data(tmp_path_factory.mktemp("schema-data"))
    model = tiny_model_dir("gpt_neox")
    run = tmp_path_factory.mktemp("schema-run") / "dp_lora"
    config = TrainConfig(
        recipe="dp_lora",
        data=str(data),
        out=str(run),
        model=str(model),
        epochs=8 / 26,
        batch_size=4,
        max_length=32,
        lora=LoRASettings(r=2),
        dp=DPSettings(epsilon=None, noise_multiplier=1.0),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, show_progress=False)
        evaluate_run(run, **EVAL)
        pair = tmp_path_factory.mktemp("schema-pair")
        evaluate_pair(str(run / "checkpoint"), str(model), data, pair, **EVAL)
    finally:
        torch.set_num_threads(threads)
    return {"run": run / "results.json", "pair": pair / "results.json"}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_schema_is_valid():
    jsonschema.Draft202012Validator.check_schema(results_schema())


def test_dialect():
    assert results_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_runner_writes_schema_version():
    assert SCHEMA_VERSION == RESULTS_SCHEMA_VERSION


def test_schema_file_packaged():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"schemas/*.json"' in pyproject


def test_run_results_valid(written):
    validate_results_file(written["run"])


def test_pair_results_valid(written):
    validate_results_file(written["pair"])


def test_written_version(written):
    assert _read(written["run"])["schema_version"] == RESULTS_SCHEMA_VERSION


def test_downstream_completed_valid(written):
    results = _read(written["run"])
    results["downstream"] = {
        "status": "completed",
        "tasks": ["hellaswag"],
        "scores": {"hellaswag/acc": 0.31},
        "results": {"hellaswag": {"acc,none": 0.31}},
        "lm_eval_version": "0.4.13",
        "limit": 10,
        "num_fewshot": None,
        "time_s": 3.2,
    }
    validate_results(results)


def test_downstream_skip_needs_reason(written):
    results = _read(written["run"])
    results["downstream"] = {"status": "skipped", "tasks": ["hellaswag"]}
    with pytest.raises(SchemaError, match="'reason' is a required property"):
        validate_results(results)


def test_missing_section(written):
    results = _read(written["run"])
    del results["utility"]
    with pytest.raises(SchemaError, match="'utility' is a required property"):
        validate_results(results)


def test_text_measure(written):
    results = copy.deepcopy(_read(written["run"]))
    results["measures"]["mia_auc"] = "high"
    with pytest.raises(SchemaError, match="measures/mia_auc"):
        validate_results(results)


def test_other_version(written):
    results = _read(written["run"])
    results["schema_version"] = RESULTS_SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="schema_version"):
        validate_results(results)


def test_new_field_allowed(written):
    results = _read(written["run"])
    results["notes"] = {"reviewer": "added later"}
    validate_results(results)
