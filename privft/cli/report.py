"""``privft report``: a terminal summary of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from privft.cli.common import fail


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="Run folder to summarize.", exists=True, file_okay=False)
    ],
) -> None:
    """Show a run's recipe, status, settings, cost, privacy ledger, measures and exposure.

    Example: privft report runs/dp_lora
    """
    from privft.report import ReportError, load_run, render_run

    try:
        run = load_run(run_dir)
    except ReportError as err:
        fail(err)
    Console().print(render_run(run))


def register(app: typer.Typer) -> None:
    app.command()(report)
