"""``privft train`` and ``privft resume``."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from privft.cli.common import console, fail


class Recipe(str, Enum):
    full = "full"
    lora = "lora"
    dp_sgd = "dp_sgd"
    dp_lora = "dp_lora"


class Accountant(str, Enum):
    rdp = "rdp"
    prv = "prv"


class GradSampleMode(str, Enum):
    auto = "auto"
    hooks = "hooks"
    functorch = "functorch"
    ghost = "ghost"


class Sampling(str, Enum):
    poisson = "poisson"
    shuffle = "shuffle"


class Sharding(str, Enum):
    none = "none"
    fsdp = "fsdp"


NumProcesses = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Processes the launcher must have started; every rank fails if it started another "
        "number. Sets PRIVFT_EXPECTED_WORLD_SIZE.",
    ),
]

# OSError includes a missing file and a full disk.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)


def train(
    recipe: Annotated[Recipe | None, typer.Option(help="Fine-tuning recipe.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Data folder (train.jsonl, test.jsonl).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to create or resume.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML preset; options given here override it.", exists=True, dir_okay=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="'builtin', a local model folder or a hub id.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the training data.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Logical batch (the expected Poisson batch under DP).")
    ] = None,
    physical_batch_size: Annotated[
        int | None, typer.Option(help="Records per forward pass; bounds memory.")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens per record (longer ones are truncated).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="DP: target epsilon.")] = None,
    delta: Annotated[float | None, typer.Option(help="DP: delta (default 1/(10 N)).")] = None,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="DP: fixed noise multiplier instead of a target epsilon.")
    ] = None,
    epsilon_budget: Annotated[
        float | None,
        typer.Option(
            help="DP: most epsilon the run may spend; training stops before a step would pass "
            "it (default: the target epsilon)."
        ),
    ] = None,
    max_grad_norm: Annotated[
        float | None, typer.Option(help="DP: per-sample clipping norm.")
    ] = None,
    sampling: Annotated[
        Sampling | None,
        typer.Option(
            help="DP: poisson (what the accountant analyses) or shuffle (fixed-size batches; "
            "the epsilon is then marked approximate)."
        ),
    ] = None,
    accountant: Annotated[Accountant | None, typer.Option(help="DP: privacy accountant.")] = None,
    grad_sample_mode: Annotated[
        GradSampleMode | None, typer.Option(help="DP: how opacus computes per-sample gradients.")
    ] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Save a resumable checkpoint every this many steps.")
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Record memorization gaps and canary log-perplexity into dynamics.jsonl "
            "every this many steps (0: never)."
        ),
    ] = None,
    report_to: Annotated[
        list[str] | None,
        typer.Option(
            help="Offline experiment tracker to log to: tensorboard, mlflow or wandb (repeat the "
            "option or separate names with commas); files go under the run folder."
        ),
    ] = None,
    sharding: Annotated[
        Sharding | None,
        typer.Option(
            help="fsdp: split the weights, gradients and optimizer state over the processes "
            "(full and lora only). none: every process stores the whole model."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    num_processes: NumProcesses = None,
) -> None:
    """Fine-tune a causal LM with one recipe; resumes if the run folder has a checkpoint.

    Example: privft train --recipe dp_lora --data data/cs --out runs/dp_lora --epsilon 8

    Several processes: accelerate launch --multi_gpu --num_processes 2 -m privft train
    --num-processes 2 ... (docs/distributed.md).
    """
    from privft.config import ConfigError, load_config
    from privft.recipes import train as run_recipe

    overrides = {
        "recipe": recipe.value if recipe else None,
        "data": str(data) if data else None,
        "out": str(out) if out else None,
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "physical_batch_size": physical_batch_size,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
        "report_to": [n.strip() for v in report_to for n in v.split(",") if n.strip()]
        if report_to
        else None,
        "eval_every": eval_every,
        "sharding": sharding.value if sharding else None,
        "dp": {
            "epsilon": epsilon,
            "delta": delta,
            "noise_multiplier": noise_multiplier,
            "epsilon_budget": epsilon_budget,
            "max_grad_norm": max_grad_norm,
            "sampling": sampling.value if sampling else None,
            "accountant": accountant.value if accountant else None,
            "grad_sample_mode": grad_sample_mode.value if grad_sample_mode else None,
        },
        "lora": {"r": lora_r},
    }
    _expect_processes(num_processes)
    try:
        settings = load_config(config, overrides)
        missing = [name for name in ("data", "out") if not getattr(settings, name)]
        if missing:
            raise ConfigError(f"missing --{' and --'.join(missing)}")
        _warn_unused_dp_options(settings, overrides["dp"])
        info = run_recipe(settings, show_progress=progress)
    except EXPECTED_ERRORS as err:
        fail(err)
    _print_run(settings.out, info)


def _warn_unused_dp_options(settings, dp_options: dict) -> None:
    """Warn when DP options are given to a recipe that does not use them."""
    given_options = [
        f"--{name.replace('_', '-')}" for name, value in dp_options.items() if value is not None
    ]
    if given_options and not settings.uses_dp:
        verb = "has" if len(given_options) == 1 else "have"
        console.print(
            f"warning: recipe {settings.recipe} is not differentially private, so "
            f"{', '.join(given_options)} {verb} no effect; use recipe dp_sgd or dp_lora for DP "
            "training",
            highlight=False,
            soft_wrap=True,
        )


def _expect_processes(num_processes: int | None) -> None:
    """Make the trainer check the launcher's world size against ``num_processes``."""
    if num_processes is not None:
        from privft.distributed import EXPECTED_WORLD_SIZE_ENV

        os.environ[EXPECTED_WORLD_SIZE_ENV] = str(num_processes)


def _print_run(run_dir: str, info) -> None:
    from privft.distributed import is_main_process, shutdown

    # Every rank of a multi-process job gets here; leave the process group together.
    shutdown()
    if not is_main_process():
        return
    cost = info.cost
    line = (
        f"{info.recipe}: {info.status}, {cost.get('steps')} steps in "
        f"{cost.get('train_time_s', 0):.1f} s"
    )
    if cost.get("epsilon") is not None:
        approximate = " (approximate)" if cost.get("epsilon_approximate") else ""
        line += f", epsilon {cost['epsilon']:.3f}{approximate}"
    if cost.get("stopped_by") == "epsilon_budget":
        line += (
            f", stopped by the epsilon budget at step {cost['steps']} of {cost['planned_steps']}"
        )
    if cost.get("world_size", 1) > 1:
        line += f", {cost['world_size']} processes"
    # soft_wrap: one line whatever the terminal width, so logs can be searched.
    console.print(line + f" -> {run_dir}", highlight=False, soft_wrap=True)


def resume(
    run_dir: Annotated[
        Path, typer.Argument(help="Run folder with config.yaml.", exists=True, file_okay=False)
    ],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    num_processes: NumProcesses = None,
) -> None:
    """Continue an interrupted run from its last checkpoint, accountant state included.

    Example: privft resume runs/dp_lora
    """
    from privft.config import read_run_config
    from privft.recipes import train as run_recipe

    _expect_processes(num_processes)
    try:
        settings = read_run_config(run_dir)
        info = run_recipe(settings, show_progress=progress)
    except EXPECTED_ERRORS as err:
        fail(err)
    _print_run(str(run_dir), info)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(resume)
