"""The real CLI end to end through Typer's test runner, on a tiny model and synthetic data."""

import json
import re

import pytest
from typer.testing import CliRunner

from privft.cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.mark.slow
def test_synth_train_eval_frontier(tmp_path, tiny_model_dir):
    model = tiny_model_dir("gpt_neox")
    data = tmp_path / "data"
    result = invoke("data", "synth", "--out", data, "--n-train", 40, "--n-test", 20)
    assert result.exit_code == 0, result.output
    runs = []
    for recipe in ("full", "dp_lora"):
        run = tmp_path / "runs" / recipe
        result = invoke(
            "train",
            "--recipe",
            recipe,
            "--data",
            data,
            "--out",
            run,
            "--model",
            model,
            "--epochs",
            1,
            "--batch-size",
            8,
            "--max-length",
            64,
            "--no-progress",
        )
        assert result.exit_code == 0, result.output
        runs.append(run)
    result = invoke(
        "eval", *runs, "--exposure", "sampled", "--exposure-samples", 300, "--no-progress"
    )
    assert result.exit_code == 0, result.output
    measures = json.loads((runs[1] / "results.json").read_text())["measures"]
    assert measures["epsilon"] <= 8.0
    result = invoke("frontier", *runs, "--out", tmp_path / "frontier")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "frontier" / "frontier.png").exists()


def test_train_bad_epsilon_exits_nonzero(tmp_path, tiny_data_dir):
    result = invoke(
        "train",
        "--recipe",
        "dp_sgd",
        "--data",
        tiny_data_dir,
        "--out",
        tmp_path / "run",
        "--epsilon",
        -1,
    )
    assert result.exit_code == 1
    assert "dp.epsilon must be positive, got -1.0" in result.output


def test_train_missing_data_names_fix(tmp_path):
    result = invoke(
        "train", "--recipe", "full", "--data", tmp_path / "nope", "--out", tmp_path / "run"
    )
    assert result.exit_code == 1
    assert "privft data synth" in result.output


def test_eval_unfinished_run_names_resume(tmp_path, tiny_data_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"recipe: full\ndata: {tiny_data_dir}\nout: {run}\n")
    result = invoke("eval", run)
    assert result.exit_code == 1
    assert "privft resume" in result.output


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
@pytest.mark.parametrize("recipe", ["dp_sgd", "dp_lora"])
def test_dp_train_prints_epsilon_within_target(tmp_path, tiny_model_dir, tiny_data_dir, recipe,
                                               arch):
    run = tmp_path / "run"
    result = invoke(
        "train", "--recipe", recipe, "--data", tiny_data_dir, "--out", run,
        "--model", tiny_model_dir(arch), "--epochs", 0.5, "--batch-size", 4,
        "--max-length", 32, "--lora-r", 2, "--epsilon", 3, "--no-progress",
    )
    assert result.exit_code == 0, result.output
    printed = re.search(r"epsilon (\d+\.\d+)", result.output)
    assert printed is not None, result.output
    ledger = json.loads((run / "privacy.json").read_text())
    assert float(printed.group(1)) == pytest.approx(ledger["epsilon"], abs=5e-4)
    assert 0 < ledger["epsilon"] <= 3.0
    assert ledger["target_epsilon"] == 3.0
    assert ledger["steps"] == ledger["planned_steps"]


@pytest.mark.parametrize(
    ("command", "extra"), [(["eval"], "privft[lm-eval]"), (["data", "tag"], "privft[presidio]")]
)
def test_help_keeps_install_extras(command, extra):
    """Rich markup must not swallow the [extra] of an install command in help text."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert extra in result.output


def test_dp_options_on_full_recipe_warn(tmp_path, tiny_model_dir, tiny_data_dir):
    result = invoke(
        "train", "--recipe", "full", "--data", tiny_data_dir, "--out", tmp_path / "run",
        "--model", tiny_model_dir("gpt_neox"), "--epochs", 0.2, "--max-length", 32,
        "--noise-multiplier", 1, "--epsilon-budget", 2, "--no-progress",
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "recipe full is not differentially private" in output
    assert "--noise-multiplier, --epsilon-budget have no effect" in output
