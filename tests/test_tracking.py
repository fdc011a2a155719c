"""Offline experiment tracking: a tiny DP-LoRA run read back from TensorBoard and MLflow files."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from privft.cli import app
from privft.config import ConfigError, DPSettings, LoRASettings, TrainConfig
from privft.recipes import train
from privft.tracking import TrackingError, check_report_to, flat_config, numbers_only

# Set before mlflow is first imported: its usage reports would otherwise try the network.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
INSTALL = 'pip install "privft[tracking]"'


def _needs(available: bool, name: str):
    """Skip a test of the tracked run when the tracker's package is missing."""
    return pytest.mark.skipif(not available, reason=f"{name} is not installed; {INSTALL}")


needs_tensorboard = _needs(HAS_TENSORBOARD, "tensorboard")
needs_mlflow = _needs(HAS_MLFLOW, "mlflow")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _log_rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model_dir) -> Path:
    """A 4-step DP-LoRA run logging to every installed tracker, then evaluated."""
    from conftest import write_tiny_data

    names = [n for n, ok in (("tensorboard", HAS_TENSORBOARD), ("mlflow", HAS_MLFLOW)) if ok]
    if not names:
        pytest.skip(f"neither tensorboard nor mlflow is installed; {INSTALL}")
    data = write_tiny_data(tmp_path_factory.mktemp("track-data"))
    out = tmp_path_factory.mktemp("tracked") / "run"
    config = TrainConfig(
        recipe="dp_lora",
        data=str(data),
        out=str(out),
        model=str(tiny_model_dir("gpt_neox")),
        epochs=4 * 4 / 26,
        batch_size=4,
        physical_batch_size=4,
        max_length=32,
        log_every=1,
        warmup_ratio=0.0,
        report_to=names,
        lora=LoRASettings(r=2),
        dp=DPSettings(epsilon=None, noise_multiplier=1.0),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, show_progress=False)
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(out),
                "--exposure",
                "sampled",
                "--exposure-samples",
                "50",
                "--extraction-records",
                "0",
                "--no-progress",
            ],
        )
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


def _scalars(run_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tracking" / "privft"))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def _mlflow_history(run_dir: Path, key: str) -> dict[int, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{(run_dir / 'mlruns').resolve()}")
    run_id = json.loads((run_dir / "tracking" / "ids.json").read_text(encoding="utf-8"))["mlflow"]
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


@needs_tensorboard
def test_tensorboard_loss(tracked):
    expected = {row["step"]: row["loss"] for row in _log_rows(tracked)}
    assert _scalars(tracked, "train/loss") == pytest.approx(expected, rel=1e-5)


@needs_tensorboard
def test_tensorboard_epsilon(tracked):
    expected = {row["step"]: row["epsilon"] for row in _log_rows(tracked)}
    assert _scalars(tracked, "train/epsilon") == pytest.approx(expected, rel=1e-5)


@needs_tensorboard
def test_tensorboard_eval_measure(tracked):
    results = json.loads((tracked / "results.json").read_text(encoding="utf-8"))
    expected = {results["cost"]["steps"]: results["measures"]["test_nll_nats"]}
    assert _scalars(tracked, "eval/test_nll_nats") == pytest.approx(expected, rel=1e-5)


@needs_mlflow
def test_mlflow_learning_rate(tracked):
    expected = {row["step"]: row["lr"] for row in _log_rows(tracked)}
    assert _mlflow_history(tracked, "train/learning_rate") == pytest.approx(expected, rel=1e-6)


@needs_mlflow
def test_mlflow_tokens_per_s(tracked):
    steps = sorted(_mlflow_history(tracked, "train/tokens_per_s"))
    assert steps == [row["step"] for row in _log_rows(tracked)]


@needs_mlflow
def test_mlflow_eval_measure(tracked):
    results = json.loads((tracked / "results.json").read_text(encoding="utf-8"))
    expected = {results["cost"]["steps"]: results["measures"]["mia_auc"]}
    assert _mlflow_history(tracked, "eval/mia_auc") == pytest.approx(expected, rel=1e-6)


@needs_mlflow
def test_mlflow_params(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{(tracked / 'mlruns').resolve()}")
    run_id = json.loads((tracked / "tracking" / "ids.json").read_text(encoding="utf-8"))["mlflow"]
    assert client.get_run(run_id).data.params["dp.noise_multiplier"] == "1.0"


def test_files_stay_in_run(tracked):
    names = {path.name for path in tracked.iterdir()}
    assert {"tracking"} <= names


def test_unknown_tracker():
    with pytest.raises(ConfigError, match="unknown trackers"):
        TrainConfig(report_to=["neptune"])


def test_missing_tracker(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(TrackingError, match="pip install wandb"):
        check_report_to(["wandb"])


def test_repeats_dropped():
    assert check_report_to([]) == []


def test_flat_config():
    assert flat_config({"dp": {"epsilon": None, "delta": 0.1}}) == {
        "dp.epsilon": "None",
        "dp.delta": 0.1,
    }


def test_numbers_only():
    assert numbers_only({"a": 1, "b": None, "c": float("nan"), "d": True, "e": "x"}) == {"a": 1.0}


def test_cli_option(tmp_path, tiny_data_dir):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--recipe",
            "lora",
            "--data",
            str(tiny_data_dir),
            "--out",
            str(tmp_path / "r"),
            "--report-to",
            "tensorboard,neptune",
            "--no-progress",
        ],
    )
    assert "neptune" in result.output
