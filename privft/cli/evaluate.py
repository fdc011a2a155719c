"""``privft eval``: evaluate runs and write results.json."""

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


def evaluate(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run folders to evaluate.", exists=True, file_okay=False)
    ],
    data: Annotated[Path | None, typer.Option(help="Data folder (default: the run's).")] = None,
    max_records: Annotated[int | None, typer.Option(help="Cap records per split.")] = None,
    exposure: Annotated[
        ExposureMethod,
        typer.Option(
            help="Canary ranks: exact enumeration, a sampled estimate, or exact where possible."
        ),
    ] = ExposureMethod.auto,
    exposure_samples: Annotated[
        int, typer.Option(help="Random candidates for sampled exposure.")
    ] = 5000,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate runs and write each one's results.json.

    Example: privft eval runs/full runs/dp_lora
    """
    from privft.evaluation import evaluate_run

    for run_dir in run_dirs:
        try:
            results = evaluate_run(
                run_dir,
                data=data,
                max_records=max_records,
                exposure_method=exposure.value,
                exposure_samples=exposure_samples,
                show_progress=progress,
            )
        except (ValueError, OSError, RuntimeError) as err:
            fail(err)
        _print_measures(run_dir.name, results["measures"])


def _print_measures(name: str, measures: dict) -> None:
    table = Table(title=f"{name}: results.json measures")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in measures.items():
        table.add_row(key, "-" if value is None else f"{value:.4g}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
