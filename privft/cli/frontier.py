"""``privft frontier``: privacy-utility frontiers over many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privft.cli.common import console, fail


def frontier(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders with results.json.")],
    out: Annotated[Path, typer.Option(help="Folder for the plots and tables.")],
    x: Annotated[str, typer.Option(help="Privacy measure on the x axis.")] = "sensitive_gap",
    y: Annotated[
        str, typer.Option(help="Utility measure on the y axis.")
    ] = "test_nonsensitive_nll_nats",
) -> None:
    """Draw the privacy-utility frontier of several runs: PNG, SVG, CSV, Markdown, JSON.

    Example: privft frontier runs/* --out frontier/
    """
    from privft.frontier import FrontierError, build_frontier

    try:
        summary = build_frontier(run_dirs, out, x=x, y=y)
    except FrontierError as err:
        fail(err)
    console.print(
        f"Pareto set: {', '.join(summary['pareto'])}; wrote {out}/frontier.png, "
        "frontier.svg, frontier.csv, frontier.md, frontier.json",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(frontier)
