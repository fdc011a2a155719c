"""``privft eval``: evaluate runs, or any fine-tuned model against its base, into results.json."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from privft.cli.common import fail


class ExposureMethod(str, Enum):
    auto = "auto"
    exact = "exact"
    sampled = "sampled"
    skewnorm = "skewnorm"


# OSError includes a missing file and a full disk.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)


def evaluate(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders to evaluate.", exists=True, file_okay=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Fine-tuned model folder (or LoRA adapter folder) to evaluate instead of runs; "
            "needs --base, --data and --out."
        ),
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Base model folder, or 'builtin', for --model.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for results.json when evaluating --model.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Data folder (default for runs: the run's).")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Tokens per record for --model (default: the smallest of 512 and the "
            "model's and tokenizer's limits); runs use their training setting."
        ),
    ] = None,
    max_records: Annotated[int | None, typer.Option(help="Cap records per split.")] = None,
    exposure: Annotated[
        ExposureMethod,
        typer.Option(
            help="Canary ranks: exact enumeration, interpolation among sampled candidates, a "
            "skew-normal fit to them, or exact where possible (auto)."
        ),
    ] = ExposureMethod.auto,
    exposure_samples: Annotated[
        int, typer.Option(help="Random candidates for sampled and skewnorm exposure.")
    ] = 5000,
    extraction_records: Annotated[
        int, typer.Option(help="Records per split tried by greedy extraction (0 skips it).")
    ] = 100,
    min_k: Annotated[
        float, typer.Option(help="Fraction of lowest-scoring tokens the Min-K% attacks average.")
    ] = 0.2,
    lm_eval_tasks: Annotated[
        str | None,
        typer.Option(
            help="lm-evaluation-harness tasks to run on the fine-tuned model, comma-separated "
            "(hellaswag,arc_easy); stored under downstream in results.json. Needs "
            '`pip install "privft\\[lm-eval]"` and the task data in the local datasets cache; '
            "skipped with the reason otherwise."
        ),
    ] = None,
    lm_eval_limit: Annotated[
        float | None, typer.Option(help="Examples per lm-eval task (below 1: a share).")
    ] = None,
    lm_eval_include: Annotated[
        Path | None, typer.Option(help="Folder of your own lm-eval task YAML files.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate runs, or a model and its base, and write results.json.

    Examples: privft eval runs/full runs/dp_lora;
    privft eval --model ft/ --base base/ --data data/cs --out results/ft
    """
    from privft import downstream
    from privft.evaluation import evaluate_pair, evaluate_run
    from privft.tracking import log_evaluation

    tasks = downstream.parse_tasks(lm_eval_tasks)
    limit = int(lm_eval_limit) if lm_eval_limit and lm_eval_limit >= 1 else lm_eval_limit
    lm_options = {"limit": limit, "include_path": lm_eval_include}
    options = {
        "max_records": max_records,
        "exposure_method": exposure.value,
        "exposure_samples": exposure_samples,
        "extraction_records": extraction_records,
        "min_k": min_k,
        "show_progress": progress,
    }
    if model is not None:
        missing = [
            name for name, value in (("base", base), ("data", data), ("out", out)) if not value
        ]
        if missing or run_dirs:
            problem = f"missing --{' and --'.join(missing)}" if missing else "run folders given"
            fail(ValueError(f"{problem}: --model takes --base, --data and --out, no run folders"))
        try:
            results = evaluate_pair(model, base, data, out, max_length=max_length, **options)
            if tasks:
                path = Path(out) / "results.json"
                block = downstream.pair_downstream(model, base, path, tasks, **lm_options)
                Console(stderr=True).print(downstream.describe(block), highlight=False)
        except EXPECTED_ERRORS as err:
            fail(err)
        _print_measures(Path(out).name, results)
        return
    if not run_dirs:
        fail(ValueError("nothing to evaluate: pass run folders, or --model with --base"))
    for run_dir in run_dirs:
        try:
            results = evaluate_run(run_dir, data=data, **options)
            if tasks:
                block = downstream.run_downstream(run_dir, tasks, **lm_options)
                results["downstream"] = block
                Console(stderr=True).print(downstream.describe(block), highlight=False)
            # Appends the measures to the trackers the run trained with, if any.
            log_evaluation(run_dir, results)
        except EXPECTED_ERRORS as err:
            fail(err)
        _print_measures(run_dir.name, results)


def _print_measures(name: str, results: dict) -> None:
    table = Table(title=f"{name}: results.json measures")
    table.add_column("measure")
    table.add_column("value", justify="right")
    approximate = bool((results.get("privacy") or {}).get("approximate"))
    for key, value in results["measures"].items():
        cell = "-" if value is None else f"{value:.4g}"
        if key == "epsilon" and value is not None and approximate:
            # privacy.json's approximate_reasons gives the reason, and `privft report` prints it.
            cell += " (approximate)"
        table.add_row(key, cell)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
