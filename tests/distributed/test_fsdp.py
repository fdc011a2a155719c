"""FSDP sharding (``sharding: fsdp``) of the non-private recipes, in two real processes on gloo.

The runs use test_two_processes's settings (six steps of 5 records, physical chunks of 2, so
rank 1 runs filler chunks) and its one-process runs as the reference. A sharded run differs from
one process only by the order of floating-point additions in the gradient reduction, so the
tolerances are the data-parallel ones: per-step mean loss within LOSS_TOLERANCE, final weights
within WEIGHT_TOLERANCE (absolute). A run stopped after its step-2 checkpoint and resumed with
FSDP must end with the weights of the uninterrupted FSDP run, within RESUME_TOLERANCE.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_two_processes import (
    CPU_CONFIG,
    LAUNCH_TIMEOUT_S,
    LOSS_TOLERANCE,
    WEIGHT_TOLERANCE,
    accelerate_launch,
    data_dir,
    largest_loss_gap,
    largest_weight_gap,
    launch_env,
    model_dir,
    one_process,
    ranks,
    read_json,
    read_log,
    settings,
)
from typer.testing import CliRunner

from privft.cli import app
from privft.config import ConfigError, LoRASettings, TrainConfig, read_run_config
from privft.distributed import transformer_block_names
from privft.evaluation.runner import load_finetuned
from privft.launch import free_port
from privft.models import load_model
from privft.recipes import train
from privft.recipes.adapters import add_lora

# Fixtures shared with test_two_processes; listed so that pytest finds them in this module.
__all__ = ["data_dir", "model_dir", "one_process"]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

RECIPES = ("full", "lora")
DP_RECIPES = ("dp_sgd", "dp_lora")
# Resuming repeats the uninterrupted run's operations in the same order on the same shards.
RESUME_TOLERANCE = 0.0
STOP_AT_STEP = 3  # after the checkpoint of step 2

# Runs privft's command line with every rank raising at the start of step STOP_AT_STEP, in
# place of a killed job.
CRASHING_ENTRY = f"""
from privft.cli import app
from privft.recipes.trainer import Trainer


class SimulatedCrash(Exception):
    pass


real_step = Trainer._train_step


def crashing_step(self, step):
    if step == {STOP_AT_STEP}:
        raise SimulatedCrash(f"stopped at step {{step}}")
    return real_step(self, step)


Trainer._train_step = crashing_step
app()
"""


def launches(test):
    """Mark a test that launches processes, itself or through its fixtures."""
    return pytest.mark.slow(pytest.mark.distributed(test))


def launch_script(script: Path, *privft_args: str) -> subprocess.CompletedProcess:
    """Run ``script`` as two processes with the shipped CPU config, on a free local port."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", CPU_CONFIG]
    command += ["--main_process_port", str(free_port()), str(script), *privft_args]
    return subprocess.run(
        command, env=launch_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, data_dir, model_dir):
    """Write test_two_processes's settings of a recipe, without sharding, and return the path."""

    def write(recipe: str) -> Path:
        path = tmp_path_factory.mktemp(f"fsdp-config-{recipe}") / "config.yaml"
        path.write_text(yaml.safe_dump(settings(recipe, data_dir, model_dir)), encoding="utf-8")
        return path

    return write


def train_args(config: Path, out: Path) -> tuple[str, ...]:
    return ("train", "--config", str(config), "--out", str(out), "--sharding", "fsdp")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, config_file):
    """Return a function that trains a recipe with FSDP in two processes once: (result, folder)."""
    runs: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}

    def run(recipe: str) -> tuple[subprocess.CompletedProcess, Path]:
        if recipe not in runs:
            out = tmp_path_factory.mktemp(f"fsdp-{recipe}") / "run"
            args = train_args(config_file(recipe), out)
            runs[recipe] = (accelerate_launch(*args, "--num-processes", "2", "--no-progress"), out)
        return runs[recipe]

    return run


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, config_file):
    """A full FSDP run in two processes that stopped at step 3, after its step-2 checkpoint."""
    folder = tmp_path_factory.mktemp("fsdp-stopped")
    script = folder / "crashing_privft.py"
    script.write_text(CRASHING_ENTRY, encoding="utf-8")
    out = folder / "run"
    args = train_args(config_file("full"), out)
    result = launch_script(script, *args, "--num-processes", "2", "--no-progress")
    return result, out


@pytest.fixture(scope="module")
def resumed_in_one_process(tmp_path_factory, stopped) -> Path:
    """A copy of the stopped FSDP run, resumed unsharded in this process."""
    _, stopped_dir = stopped
    out = tmp_path_factory.mktemp("fsdp-resumed-one") / "run"
    shutil.copytree(stopped_dir, out)
    config = TrainConfig(**{**read_run_config(out).to_dict(), "out": str(out)})
    train(config, show_progress=False)
    return out


@pytest.fixture(scope="module")
def resumed(stopped, resumed_in_one_process):
    """The stopped FSDP run resumed by two processes (after its copy was taken)."""
    _, out = stopped
    args = ("resume", str(out), "--num-processes", "2", "--no-progress")
    return accelerate_launch(*args), out


# Config and command line -------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", DP_RECIPES)
def test_dp_recipe_rejects_fsdp(recipe):
    with pytest.raises(ConfigError, match="opacus computes per-sample gradients"):
        TrainConfig(recipe=recipe, data="d", out="o", sharding="fsdp")


def test_unknown_sharding_rejected():
    with pytest.raises(ConfigError, match="sharding 'zero3' is unknown; valid: none, fsdp"):
        TrainConfig(recipe="full", data="d", out="o", sharding="zero3")


def test_eval_every_rejected_with_fsdp():
    with pytest.raises(ConfigError, match="Set eval_every to 0"):
        TrainConfig(recipe="lora", data="d", out="o", sharding="fsdp", eval_every=2)


def test_non_private_recipes_accept_fsdp():
    for recipe in RECIPES:
        assert TrainConfig(recipe=recipe, data="d", out="o", sharding="fsdp").sharding == "fsdp"


def test_cli_rejects_fsdp_for_dp(tmp_path):
    argv = ["train", "--recipe", "dp_sgd", "--data", "d", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*argv, "--sharding", "fsdp"])
    assert result.exit_code != 0
    assert "opacus computes per-sample gradients" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_block_names_found(tiny_model_dir, arch):
    model = load_model(str(tiny_model_dir(arch)))
    names = transformer_block_names(model)
    assert sum(type(m).__name__ in names for m in model.modules()) == 2


def test_block_names_through_peft(tiny_model_dir):
    model = add_lora(load_model(str(tiny_model_dir("gpt_neox"))), LoRASettings(r=2))
    assert transformer_block_names(model) == {"GPTNeoXLayer"}


# One process ----------------------------------------------------------------------------------
def test_one_process_fsdp_is_unsharded(tmp_path, data_dir, model_dir, one_process):
    config = TrainConfig(
        **settings("full", data_dir, model_dir), sharding="fsdp", out=str(tmp_path / "run")
    )
    train(config, show_progress=False)
    assert largest_weight_gap(tmp_path / "run", one_process("full")) == 0.0


# Two processes -----------------------------------------------------------------------------------
@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_launch_succeeds(sharded, recipe):
    result, _ = sharded(recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminate called" not in result.stderr


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_sharding_recorded(sharded, recipe):
    _, run_dir = sharded(recipe)
    assert read_run_config(run_dir).sharding == "fsdp"
    assert read_json(run_dir / "run_info.json")["environment"]["distributed"]["sharding"] == "fsdp"


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_each_rank_holds_a_slice(sharded, recipe):
    _, run_dir = sharded(recipe)
    total = read_json(run_dir / "run_info.json")["cost"]["total_params"]
    local_counts = [r["local_parameters"] for r in ranks(run_dir)]
    assert sum(local_counts) == total
    assert max(local_counts) < total


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_ranks_digest_same_weights(sharded, recipe):
    _, run_dir = sharded(recipe)
    assert len({r["parameter_sha256"] for r in ranks(run_dir)}) == 1


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_loss_matches_one_process(sharded, one_process, recipe):
    _, run_dir = sharded(recipe)
    assert largest_loss_gap(run_dir, one_process(recipe)) <= LOSS_TOLERANCE


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_weights_match_one_process(sharded, one_process, recipe):
    _, run_dir = sharded(recipe)
    assert largest_weight_gap(run_dir, one_process(recipe)) <= WEIGHT_TOLERANCE


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_checkpoint_files_match_one_process(sharded, one_process, recipe):
    _, run_dir = sharded(recipe)
    names = {path.name for path in (run_dir / "checkpoint").iterdir()}
    assert names == {path.name for path in (one_process(recipe) / "checkpoint").iterdir()}


@launches
@pytest.mark.parametrize("recipe", RECIPES)
def test_final_checkpoint_loads(sharded, one_process, model_dir, recipe):
    _, run_dir = sharded(recipe)
    loaded = load_finetuned(run_dir, str(model_dir)).state_dict()
    reference = load_finetuned(one_process(recipe), str(model_dir)).state_dict()
    assert loaded.keys() == reference.keys()
    gap = max(float((loaded[name] - reference[name]).abs().max()) for name in reference)
    assert gap <= WEIGHT_TOLERANCE


# Stopped and resumed ----------------------------------------------------------------------------
@launches
def test_stopped_run_failed(stopped):
    result, run_dir = stopped
    assert result.returncode != 0
    assert "SimulatedCrash" in result.stderr
    assert read_json(run_dir / "run_info.json")["status"] == "failed"


@launches
def test_stopped_run_kept_checkpoint(stopped):
    _, run_dir = stopped
    assert read_json(run_dir / "state" / "latest.json")["step"] == 2


@launches
def test_sharded_checkpoint_has_unsharded_layout(stopped, model_dir):
    _, run_dir = stopped
    folder = run_dir / "state" / "step-000002"
    weights = load_file(folder / "trainable.safetensors")
    params = load_model(str(model_dir)).named_parameters()
    assert {name: t.shape for name, t in weights.items()} == {n: p.shape for n, p in params}
    saved = torch.load(folder / "optimizer.pt", weights_only=True)["optimizer"]
    assert sorted(saved["state"]) == list(range(len(weights)))
    assert saved["param_groups"][0]["params"] == list(range(len(weights)))


@launches
def test_resume_succeeds(resumed):
    result, _ = resumed
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminate called" not in result.stderr


@launches
def test_resume_log_complete(resumed, one_process):
    _, run_dir = resumed
    steps = len(read_log(one_process("full")))
    assert [row["step"] for row in read_log(run_dir)] == list(range(1, steps + 1))


@launches
def test_resume_weights_match_uninterrupted(resumed, sharded):
    _, run_dir = resumed
    _, uninterrupted = sharded("full")
    assert largest_weight_gap(run_dir, uninterrupted) <= RESUME_TOLERANCE


@launches
def test_resume_in_one_process_matches(resumed_in_one_process, one_process):
    gap = largest_weight_gap(resumed_in_one_process, one_process("full"))
    assert gap <= WEIGHT_TOLERANCE
