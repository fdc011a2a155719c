"""An evaluation killed part-way leaves results.json untouched, and a rerun gives the same one."""

import json
import re

import pytest
from conftest import write_tiny_data
from fault_tools import kill_when, one_thread, start_privft
from typer.testing import CliRunner

from privft import storage
from privft.cli import app
from privft.config import TrainConfig
from privft.evaluation import evaluate_run
from privft.recipes import train

EXPOSURE = {"exposure_method": "sampled", "exposure_samples": 3000}
# Seconds measured during evaluation. Everything else in results.json is seeded or comes from
# the run's own files.
# Fields that describe the evaluating process rather than the results: wall time, and the
# environment (thread count, package versions), which other tests in the session may change.
TIMING_FIELDS = ("eval_time_s", "environment")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("eval-rerun")
    config = TrainConfig(
        recipe="full",
        data=str(write_tiny_data(root / "data")),
        out=str(root / "run"),
        model=str(tiny_model_dir("gpt_neox")),
        epochs=1,
        batch_size=4,
        max_length=48,
    )
    with one_thread():
        train(config, show_progress=False)
    return root / "run"


def without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in TIMING_FIELDS}


@pytest.mark.slow
def test_killed_eval_rerun_matches(trained_run):
    with one_thread():
        evaluate_run(trained_run, show_progress=False, **EXPOSURE)
    results_path = trained_run / "results.json"
    before = results_path.read_bytes()

    process = start_privft("eval", trained_run, "--exposure", "sampled", "--exposure-samples", 3000)

    def scoring_done():
        # The scoring bar prints "score records: N/N" when it closes; exposure comes next.
        match = re.match(r"score records: (\d+)/(\d+)", process.stderr.readline())
        return match is not None and match.group(1) == match.group(2)

    kill_when(process, scoring_done)
    assert process.returncode == -9
    assert results_path.read_bytes() == before

    rerun = start_privft(
        "eval", trained_run, "--exposure", "sampled", "--exposure-samples", 3000, "--no-progress"
    )
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()[-2000:]
    rerun.stderr.close()
    first = without_timing(json.loads(before))
    second = without_timing(json.loads(results_path.read_bytes()))
    assert json.dumps(second["measures"]) == json.dumps(first["measures"])
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_results_write_failure_reported(trained_run, monkeypatch):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", full_disk)
    args = ["eval", str(trained_run), "--exposure", "sampled", "--exposure-samples", 50]
    with one_thread():
        result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 1
    assert "error: [Errno 28] No space left on device" in result.output
