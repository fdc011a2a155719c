"""Sweeps that train and evaluate tiny models: locally, through shell commands and on Ray."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from privft.sweep import build_frontiers, parse_sweep, run_sweep, shell_commands, write_plan


def tiny_sweep(tmp_path, model, data, recipes=("full", "lora"), seeds=(0,)):
    raw = {
        "name": "tiny",
        "out": str(tmp_path / "sweep"),
        "base": {"model": str(model), "epochs": 1, "batch_size": 8, "max_length": 48},
        "grid": {"recipe": list(recipes), "epsilon": [8], "lora_r": [2], "seed": list(seeds)},
        "datasets": {"tiny": {"path": str(data)}},
        "eval": {"exposure": "sampled", "exposure_samples": 100},
        "resources": {"num_cpus": 1, "max_retries": 0},
    }
    return parse_sweep(raw)


@pytest.mark.slow
def test_local_sweep_skips_finished(tmp_path, tiny_model_dir, tiny_data_dir):
    sweep = tiny_sweep(tmp_path, tiny_model_dir("gpt_neox"), tiny_data_dir)
    first = run_sweep(sweep)
    assert [o.status for o in first] == ["completed", "completed"]
    for run in sweep.runs:
        assert (Path(run.run_dir) / "results.json").exists()
    again = run_sweep(sweep)
    assert [o.status for o in again] == ["skipped", "skipped"]
    status = json.loads((Path(sweep.out) / "sweep.json").read_text())
    assert [r["status"] for r in status["runs"]] == ["skipped", "skipped"]
    folders = build_frontiers(sweep)
    assert (folders["tiny"] / "frontier.html").exists()


@pytest.mark.slow
def test_local_sweep_evaluates_trained_run(tmp_path, tiny_model_dir, tiny_data_dir):
    from privft.recipes import train

    sweep = tiny_sweep(tmp_path, tiny_model_dir("gpt_neox"), tiny_data_dir, recipes=("lora",))
    run = sweep.runs[0]
    train(run.config, show_progress=False)
    log_lines = (Path(run.run_dir) / "train_log.jsonl").read_text().splitlines()
    outcomes = run_sweep(sweep)
    assert outcomes[0].status == "completed"
    # Training was not repeated: the log has no new lines.
    assert (Path(run.run_dir) / "train_log.jsonl").read_text().splitlines() == log_lines


@pytest.mark.slow
def test_failed_run_recorded(tmp_path, tiny_model_dir, tiny_data_dir):
    sweep = tiny_sweep(tmp_path, tiny_model_dir("gpt_neox"), tiny_data_dir, recipes=("full",))
    sweep.runs[0].config.model = str(tmp_path / "no-model")
    outcomes = run_sweep(sweep)
    assert outcomes[0].status == "failed"
    assert "no-model" in outcomes[0].error


@pytest.mark.slow
def test_shell_command_runs(tmp_path, tiny_model_dir, tiny_data_dir):
    sweep = tiny_sweep(tmp_path, tiny_model_dir("gpt_neox"), tiny_data_dir, recipes=("lora",))
    write_plan(sweep)
    line = shell_commands(sweep)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (Path(sweep.runs[0].run_dir) / "results.json").exists()


def write_eight_run_sweep(folder: Path, model: Path, data: Path) -> Path:
    """A sweep file of 4 recipes x 2 seeds on the tiny model: 8 runs."""
    import yaml

    raw = {
        "name": "eight",
        "out": str(folder / "unused"),
        "base": {"model": str(model), "epochs": 1, "batch_size": 8, "max_length": 48},
        "grid": {
            "recipe": ["full", "lora", "dp_sgd", "dp_lora"],
            "epsilon": [8],
            "lora_r": [2],
            "seed": [0, 1],
        },
        "datasets": {"tiny": {"path": str(data)}},
        "eval": {"exposure": "sampled", "exposure_samples": 50},
        "resources": {"num_cpus": 1, "max_retries": 0},
    }
    path = folder / "eight.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sweep_statuses(out: Path) -> list[str]:
    return [run["status"] for run in json.loads((out / "sweep.json").read_text())["runs"]]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_cli_sweep_of_eight_runs(tmp_path, tiny_model_dir, tiny_data_dir, monkeypatch, backend):
    """`privft sweep` completes 8 runs, then a second invocation skips every one."""
    from typer.testing import CliRunner

    from privft.cli import app

    if backend == "ray":
        pytest.importorskip("ray", reason="Ray is not installed; pip install 'privft[ray]'")
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    sweep_file = write_eight_run_sweep(tmp_path, tiny_model_dir("gpt_neox"), tiny_data_dir)
    out = tmp_path / backend
    command = ["sweep", str(sweep_file), "--out", str(out), "--backend", backend]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert sweep_statuses(out) == ["completed"] * 8
    results = sorted(out.glob("runs/*/results.json"))
    assert len(results) == 8
    stamps = [path.stat().st_mtime_ns for path in results]
    assert (out / "frontier" / "tiny" / "frontier.html").exists()

    second = CliRunner().invoke(app, command + ["--no-frontier"])
    assert second.exit_code == 0, second.output
    assert sweep_statuses(out) == ["skipped"] * 8
    assert [path.stat().st_mtime_ns for path in results] == stamps
