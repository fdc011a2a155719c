"""The GPU check script's dry run: the same code path on a tiny model on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check" / "run.sh"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = ["bash", str(SCRIPT), "--dry-run", "--json", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    return result, out


def test_dry_run_succeeds(dry_run):
    result, _ = dry_run
    assert result.returncode == 0, result.stderr[-3000:]


def test_dry_run_reports_both_recipes(dry_run):
    _, out = dry_run
    recipes = [run["recipe"] for run in json.loads(out.read_text())["training"]]
    assert recipes == ["dp_lora", "dp_sgd"]


def test_dry_run_measures_speed(dry_run):
    _, out = dry_run
    assert min(run["tokens_per_s"] for run in json.loads(out.read_text())["training"]) > 0


def test_dry_run_gradient_checks_pass(dry_run):
    _, out = dry_run
    assert all(check["passed"] for check in json.loads(out.read_text())["gradient_checks"])


def test_dry_run_prints_table(dry_run):
    result, _ = dry_run
    assert "tokens/s" in result.stdout


def test_dry_run_prints_peak_memory(dry_run):
    result, _ = dry_run
    assert "peak MB" in result.stdout
