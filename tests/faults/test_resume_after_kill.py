"""A training process killed with SIGKILL resumes to exactly the weights of an uninterrupted run."""

import pytest
import torch
from conftest import write_tiny_data
from fault_tools import (
    assert_files_complete,
    final_weights,
    kill_when,
    latest_step,
    log_rows,
    one_thread,
    read_json,
    start_privft,
)
from typer.testing import CliRunner

from privft.cli import app

# (recipe, batch size, epochs, step to kill at or after): about 26 full steps and 10 DP steps on
# the 26 tiny records.
CASES = [("full", 2, 2, 4), ("dp_sgd", 8, 3, 3)]


def train_args(recipe, batch_size, epochs, data, out, model):
    args = [
        "train", "--recipe", recipe, "--data", data, "--out", out, "--model", model,
        "--epochs", epochs, "--batch-size", batch_size, "--max-length", 48, "--seed", 3,
        "--checkpoint-every", 1, "--no-progress",
    ]  # fmt: skip
    if recipe.startswith("dp"):
        args += ["--epsilon", 8]
    return [str(a) for a in args]


def invoke(args):
    with one_thread():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_killed_run_resumes_exactly(tmp_path, tiny_model_dir, case):
    recipe, batch_size, epochs, kill_step = case
    data = write_tiny_data(tmp_path / "data")
    model = tiny_model_dir("gpt_neox")
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    process = start_privft(*train_args(recipe, batch_size, epochs, data, killed, model))
    kill_when(process, lambda: (latest_step(killed) or 0) >= kill_step)
    assert process.returncode == -9
    assert_files_complete(killed)
    assert read_json(killed / "run_info.json")["status"] == "running"
    assert not (killed / "checkpoint").exists()

    invoke(["resume", str(killed), "--no-progress"])
    invoke(train_args(recipe, batch_size, epochs, data, reference, model))

    resumed_info = read_json(killed / "run_info.json")
    reference_info = read_json(reference / "run_info.json")
    assert resumed_info["status"] == "completed"
    assert resumed_info["cost"]["steps"] == reference_info["cost"]["steps"]
    assert resumed_info["cost"]["epsilon"] == reference_info["cost"]["epsilon"]
    resumed, expected = final_weights(killed), final_weights(reference)
    assert resumed.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(resumed[name], tensor), name
    assert log_rows(killed) == log_rows(reference)
    assert not (killed / "state").exists()
