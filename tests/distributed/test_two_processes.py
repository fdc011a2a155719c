"""Each recipe run as two real processes (accelerate launch, gloo) against a one-process run.

Both runs draw the same logical batches, and under DP the same noise (rank 0 draws it with the
seed a one-process run uses), so they differ only by the order of floating-point additions. The
tolerances: per-step mean loss within LOSS_TOLERANCE, final trainable weights within
WEIGHT_TOLERANCE (absolute); epsilon must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_tiny_data
from safetensors.torch import load_file

from privft.config import TrainConfig
from privft.launch import free_port
from privft.recipes import train
from privft.recipes.trainer import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.distributed,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]

RECIPES = ("full", "lora", "dp_sgd", "dp_lora")
DP_RECIPES = ("dp_sgd", "dp_lora")
NUM_TRAIN = 26  # write_tiny_data's 24 records plus the canary inserted twice
LOSS_TOLERANCE = 1e-4
WEIGHT_TOLERANCE = 1e-4
LAUNCH_TIMEOUT_S = 300
CPU_CONFIG = str(
    Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / "ddp_2proc_cpu.yaml"
)


def settings(recipe: str, data: Path, model: Path) -> dict:
    """Return the run settings of ``recipe``.

    Without DP: six steps of 5 records, split 3 and 2 (the last step 1 and 0), so rank 1 runs
    filler chunks. With DP: five Poisson steps of 4 expected records, where some shares are
    empty. DP-LoRA uses ghost clipping and DP-SGD per-sample hooks.
    """
    uses_dp = recipe in DP_RECIPES
    return {
        "recipe": recipe,
        "data": str(data),
        "model": str(model),
        "epochs": 5 * 4 / NUM_TRAIN if uses_dp else 1.0,
        "batch_size": 4 if uses_dp else 5,
        "physical_batch_size": 2,
        "max_length": 32,
        "learning_rate": 1e-2,
        "warmup_ratio": 0.0,
        "log_every": 1,
        "checkpoint_every": 2,
        "lora": {"r": 2},
        "dp": {
            "epsilon": None,
            "noise_multiplier": 1.0,
            "grad_sample_mode": "ghost" if recipe == "dp_lora" else "hooks",
        },
    }


def launch_env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }


def accelerate_launch(*privft_args: str) -> subprocess.CompletedProcess:
    """``accelerate launch`` with the shipped two-process CPU config, on a free local port."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", CPU_CONFIG]
    command += ["--main_process_port", str(free_port()), "-m", "privft", *privft_args]
    return subprocess.run(
        command, env=launch_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S
    )


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("gpt_neox")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, data_dir, model_dir):
    def write(recipe: str) -> Path:
        path = tmp_path_factory.mktemp(f"config-{recipe}") / "config.yaml"
        path.write_text(yaml.safe_dump(settings(recipe, data_dir, model_dir)), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data_dir, model_dir):
    """Return a function that trains a recipe in this process once and returns its folder."""
    runs: dict[str, Path] = {}

    def run(recipe: str) -> Path:
        if recipe not in runs:
            out = tmp_path_factory.mktemp(f"one-{recipe}")
            config = TrainConfig(**settings(recipe, data_dir, model_dir), out=str(out))
            train(config, show_progress=False)
            runs[recipe] = out
        return runs[recipe]

    return run


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, config_file):
    """Return a function that launches a recipe as two processes once: (result, folder)."""
    runs: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}

    def run(recipe: str) -> tuple[subprocess.CompletedProcess, Path]:
        if recipe not in runs:
            out = tmp_path_factory.mktemp(f"two-{recipe}") / "run"
            args = ("train", "--config", str(config_file(recipe)), "--out", str(out))
            runs[recipe] = (accelerate_launch(*args, "--num-processes", "2", "--no-progress"), out)
        return runs[recipe]

    return run


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def read_log(run_dir: Path) -> list[dict]:
    lines = (run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ranks(run_dir: Path) -> list[dict]:
    return read_json(run_dir / "run_info.json")["environment"]["distributed"]["ranks"]


def saved_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoint"
    adapter = folder / "adapter_model.safetensors"
    return load_file(adapter if adapter.exists() else folder / "model.safetensors")


def largest_weight_gap(a: Path, b: Path) -> float:
    first, second = saved_weights(a), saved_weights(b)
    return max(float((first[name] - second[name]).abs().max()) for name in first)


def largest_loss_gap(a: Path, b: Path) -> float:
    return max(abs(x["loss"] - y["loss"]) for x, y in zip(read_log(a), read_log(b), strict=True))


@pytest.mark.parametrize("recipe", RECIPES)
def test_launch_succeeds(two_processes, recipe):
    result, _ = two_processes(recipe)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("recipe", RECIPES)
def test_no_abort_at_exit(two_processes, recipe):
    result, _ = two_processes(recipe)
    assert "terminate called" not in result.stderr


@pytest.mark.parametrize("recipe", RECIPES)
def test_world_size_two(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    assert read_json(run_dir / "run_info.json")["cost"]["world_size"] == 2


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_rank_reported(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    assert [r["rank"] for r in ranks(run_dir)] == [0, 1]


@pytest.mark.parametrize("recipe", RECIPES)
def test_both_ranks_trained(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    assert min(r["records"] for r in ranks(run_dir)) > 0


@pytest.mark.parametrize("recipe", RECIPES)
def test_shares_cover_the_batches(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    drawn = sum(row["batch_records"] for row in read_log(run_dir))
    assert sum(r["records"] for r in ranks(run_dir)) == drawn


@pytest.mark.parametrize("recipe", RECIPES)
def test_parameters_identical_across_ranks(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    assert len({r["parameter_sha256"] for r in ranks(run_dir)}) == 1


@pytest.mark.parametrize("recipe", RECIPES)
def test_loss_matches_one_process(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    assert largest_loss_gap(run_dir, one_process(recipe)) <= LOSS_TOLERANCE


@pytest.mark.parametrize("recipe", RECIPES)
def test_weights_match_one_process(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    assert largest_weight_gap(run_dir, one_process(recipe)) <= WEIGHT_TOLERANCE


@pytest.mark.parametrize("recipe", RECIPES)
def test_batches_match_one_process(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    sizes = [row["batch_records"] for row in read_log(run_dir)]
    assert sizes == [row["batch_records"] for row in read_log(one_process(recipe))]


@pytest.mark.parametrize("recipe", DP_RECIPES)
def test_epsilon_matches_one_process(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    epsilon = read_json(one_process(recipe) / "run_info.json")["cost"]["epsilon"]
    assert read_json(run_dir / "run_info.json")["cost"]["epsilon"] == epsilon


@pytest.mark.parametrize("recipe", DP_RECIPES)
def test_ranks_agree_on_epsilon(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    assert len({r["epsilon"] for r in ranks(run_dir)}) == 1


@pytest.mark.parametrize("recipe", DP_RECIPES)
def test_ledger_history_matches_one_process(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    history = read_json(one_process(recipe) / "privacy.json")["history"]
    assert read_json(run_dir / "privacy.json")["history"] == history


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_set_of_outputs(two_processes, recipe):
    _, run_dir = two_processes(recipe)
    expected = {"checkpoint", "config.yaml", "run_info.json", "train_log.jsonl"}
    if recipe in DP_RECIPES:
        expected.add("privacy.json")
    assert {path.name for path in run_dir.iterdir()} == expected


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_log_row_per_step(two_processes, one_process, recipe):
    _, run_dir = two_processes(recipe)
    steps = len(read_log(one_process(recipe)))
    assert [row["step"] for row in read_log(run_dir)] == list(range(1, steps + 1))


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_summary_line(two_processes, recipe):
    result, _ = two_processes(recipe)
    assert result.stderr.count(f"{recipe}: completed") == 1


class SimulatedCrash(Exception):
    """Raised inside a training step in place of a killed process."""


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, data_dir, model_dir):
    """A DP-SGD run stopped in one process after its step-2 checkpoint, resumed by two."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    config = TrainConfig(**settings("dp_sgd", data_dir, model_dir), out=str(out))
    real_step = Trainer._train_step

    def crashing_step(self, step):
        if step == 3:
            raise SimulatedCrash(f"stopped at step {step}")
        return real_step(self, step)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_train_step", crashing_step)
        with pytest.raises(SimulatedCrash):
            train(config, show_progress=False)
    command = [sys.executable, "-m", "privft.launch", "--num-processes", "2"]
    command += ["--main-process-port", str(free_port()), "resume", str(out), "--no-progress"]
    result = subprocess.run(
        command, env=launch_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S
    )
    return result, out


def test_resume_succeeds(resumed):
    result, _ = resumed
    assert result.returncode == 0, result.stderr[-3000:]


def test_resume_no_abort_at_exit(resumed):
    result, _ = resumed
    assert "terminate called" not in result.stderr


def test_resume_used_two_processes(resumed):
    _, run_dir = resumed
    assert read_json(run_dir / "run_info.json")["cost"]["world_size"] == 2


def test_resume_ranks_identical(resumed):
    _, run_dir = resumed
    assert len({r["parameter_sha256"] for r in ranks(run_dir)}) == 1


def test_resume_epsilon_matches_uninterrupted(resumed, one_process):
    _, run_dir = resumed
    epsilon = read_json(one_process("dp_sgd") / "run_info.json")["cost"]["epsilon"]
    assert read_json(run_dir / "run_info.json")["cost"]["epsilon"] == epsilon


def test_resume_weights_match_uninterrupted(resumed, one_process):
    _, run_dir = resumed
    assert largest_weight_gap(run_dir, one_process("dp_sgd")) <= WEIGHT_TOLERANCE


def test_resume_log_complete(resumed, one_process):
    _, run_dir = resumed
    steps = len(read_log(one_process("dp_sgd")))
    assert [row["step"] for row in read_log(run_dir)] == list(range(1, steps + 1))
