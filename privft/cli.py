"""The ``privft`` command line: thin wrappers that parse options and call the library."""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Measure what fine-tuning a causal LM costs in privacy, utility and compute.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
data_app = typer.Typer(help="Make or inspect datasets.", no_args_is_help=True,
                       pretty_exceptions_show_locals=False)
app.add_typer(data_app, name="data")
console = Console(stderr=True)


class Recipe(str, Enum):
    full = "full"
    lora = "lora"
    dp_sgd = "dp_sgd"
    dp_lora = "dp_lora"


class Domain(str, Enum):
    customer_support = "customer_support"
    biographies = "biographies"


class ExposureMethod(str, Enum):
    auto = "auto"
    exact = "exact"
    sampled = "sampled"


class Accountant(str, Enum):
    rdp = "rdp"
    prv = "prv"


class GradSampleMode(str, Enum):
    hooks = "hooks"
    functorch = "functorch"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    import warnings

    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    # opacus's per-sample hooks trigger this torch notice on every frozen-input backward.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")


def _fail(err: Exception) -> None:
    print(f"error: {err}", file=sys.stderr)
    raise typer.Exit(code=1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                               help="Log progress details.")] = False) -> None:
    _setup_logging(verbose)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Folder to write train/test/canaries JSONL into.")],
    domain: Annotated[Domain, typer.Option(help="Which synthetic domain.")] =
        Domain.customer_support,
    n_train: Annotated[int, typer.Option(help="Training records (before canaries).")] = 600,
    n_test: Annotated[int, typer.Option(help="Held-out records.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
) -> None:
    """Write a synthetic dataset with ground-truth PII spans and inserted canaries.

    Example: privft data synth --domain biographies --out data/bio
    """
    from privft.data.synth import synthesize

    try:
        manifest = synthesize(domain.value, out, n_train=n_train, n_test=n_test, seed=seed)
    except ValueError as err:
        _fail(err)
    console.print(f"wrote {domain.value} data to {out}: {manifest.n_train} train records "
                  f"+ {manifest.n_canary_insertions} canary insertions, {manifest.n_test} test "
                  f"records, {len(manifest.insertions)} canaries", highlight=False)


@app.command()
def train(
    recipe: Annotated[Recipe | None, typer.Option(help="Fine-tuning recipe.")] = None,
    data: Annotated[Path | None, typer.Option(help="Data folder (train.jsonl, test.jsonl).")] =
        None,
    out: Annotated[Path | None, typer.Option(help="Run folder to create or resume.")] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML preset; options given here override it.", exists=True, dir_okay=False)] = None,
    model: Annotated[str | None, typer.Option(
        help="'builtin', a local model folder or a hub id.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the training data.")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Logical batch (the expected Poisson batch under DP).")] = None,
    physical_batch_size: Annotated[int | None, typer.Option(
        help="Records per forward pass; bounds memory.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] =
        None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per record (longer ones are "
                                                         "truncated).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="DP: target epsilon.")] = None,
    delta: Annotated[float | None, typer.Option(help="DP: delta (default 1/(10 N)).")] = None,
    noise_multiplier: Annotated[float | None, typer.Option(
        help="DP: fixed noise multiplier instead of a target epsilon.")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(help="DP: per-sample clipping norm.")] =
        None,
    accountant: Annotated[Accountant | None, typer.Option(help="DP: privacy accountant.")] = None,
    grad_sample_mode: Annotated[GradSampleMode | None, typer.Option(
        help="DP: how opacus computes per-sample gradients.")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a causal LM with one recipe; resumes if the run folder has a checkpoint.

    Example: privft train --recipe dp_lora --data data/cs --out runs/dp_lora --epsilon 8
    """
    from privft.config import ConfigError, load_config
    from privft.recipes import train as run_recipe

    overrides = {
        "recipe": recipe.value if recipe else None, "data": str(data) if data else None,
        "out": str(out) if out else None, "model": model, "epochs": epochs,
        "batch_size": batch_size, "physical_batch_size": physical_batch_size,
        "learning_rate": learning_rate, "max_length": max_length, "seed": seed,
        "dp": {"epsilon": epsilon, "delta": delta, "noise_multiplier": noise_multiplier,
               "max_grad_norm": max_grad_norm,
               "accountant": accountant.value if accountant else None,
               "grad_sample_mode": grad_sample_mode.value if grad_sample_mode else None},
        "lora": {"r": lora_r},
    }
    try:
        settings = load_config(config, overrides)
        missing = [name for name in ("data", "out") if not getattr(settings, name)]
        if missing:
            raise ConfigError(f"missing --{' and --'.join(missing)}")
        info = run_recipe(settings, show_progress=progress)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        _fail(err)
    _print_run(settings.out, info)


def _print_run(run_dir: str, info) -> None:
    cost = info.cost
    line = f"{info.recipe}: {info.status}, {cost.get('steps')} steps in " \
           f"{cost.get('train_time_s', 0):.1f} s"
    if cost.get("epsilon") is not None:
        line += f", epsilon {cost['epsilon']:.3f}"
    console.print(line + f" -> {run_dir}", highlight=False)


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="Run folder with config.yaml.", exists=True,
                                            file_okay=False)],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Continue an interrupted run from its last checkpoint, accountant state included.

    Example: privft resume runs/dp_lora
    """
    from privft.config import ConfigError, read_run_config
    from privft.recipes import train as run_recipe

    try:
        settings = read_run_config(run_dir)
        info = run_recipe(settings, show_progress=progress)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        _fail(err)
    _print_run(str(run_dir), info)


@app.command("eval")
def evaluate(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to evaluate.", exists=True,
                                                   file_okay=False)],
    data: Annotated[Path | None, typer.Option(help="Data folder (default: the run's).")] = None,
    max_records: Annotated[int | None, typer.Option(help="Cap records per split.")] = None,
    exposure: Annotated[ExposureMethod, typer.Option(
        help="Canary ranks: exact enumeration, a sampled estimate, or exact where possible.")] =
        ExposureMethod.auto,
    exposure_samples: Annotated[int, typer.Option(
        help="Random candidates for sampled exposure.")] = 5000,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate runs and write each one's results.json.

    Example: privft eval runs/full runs/dp_lora
    """
    from privft.evaluation import evaluate_run

    for run_dir in run_dirs:
        try:
            results = evaluate_run(run_dir, data=data, max_records=max_records,
                                   exposure_method=exposure.value,
                                   exposure_samples=exposure_samples, show_progress=progress)
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            _fail(err)
        _print_measures(run_dir.name, results["measures"])


def _print_measures(name: str, measures: dict) -> None:
    table = Table(title=f"{name}: results.json measures")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in measures.items():
        table.add_row(key, "-" if value is None else f"{value:.4g}")
    Console().print(table)


@app.command()
def frontier(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders with results.json.")],
    out: Annotated[Path, typer.Option(help="Folder for the plots and tables.")],
    x: Annotated[str, typer.Option(help="Privacy measure on the x axis.")] = "sensitive_gap",
    y: Annotated[str, typer.Option(help="Utility measure on the y axis.")] =
        "test_nonsensitive_nll_nats",
) -> None:
    """Draw the privacy-utility frontier of several runs: PNG, SVG, CSV, Markdown, JSON.

    Example: privft frontier runs/* --out frontier/
    """
    from privft.frontier import FrontierError, build_frontier

    try:
        summary = build_frontier(run_dirs, out, x=x, y=y)
    except FrontierError as err:
        _fail(err)
    console.print(f"Pareto set: {', '.join(summary['pareto'])}; wrote {out}/frontier.png, "
                  "frontier.svg, frontier.csv, frontier.md, frontier.json", highlight=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, runs and the frontier.")] =
        Path("privft-demo"),
    domain: Annotated[Domain, typer.Option(help="Synthetic domain.")] = Domain.customer_support,
    epsilon: Annotated[float, typer.Option(help="Target epsilon of the DP recipes.")] = 8.0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Make data, train the four recipes on the built-in model, evaluate, draw the frontier.

    Example: privft demo --out privft-demo
    """
    from privft.demo import DemoPlan, run_demo

    logging.getLogger("privft").setLevel(logging.INFO)
    summary = run_demo(out, DemoPlan(domain=domain.value, epsilon=epsilon),
                       show_progress=progress)
    table = Table(title="privft demo: privacy, utility and cost per recipe")
    for column in ("run", "sensitive_gap", "exposure_max", "mia_auc", "test NLL", "epsilon",
                   "train s"):
        table.add_column(column, justify="right")
    for point in summary["points"]:
        m = point["mean"]
        table.add_row(point["name"], *[_fmt(m.get(k)) for k in (
            "sensitive_gap", "exposure_max", "mia_auc", "test_nonsensitive_nll_nats",
            "epsilon", "train_time_s")])
    Console().print(table)
    console.print(f"done in {summary['demo_time_s']:.0f} s; frontier in {out}/frontier/",
                  highlight=False)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"
