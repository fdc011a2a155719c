"""``privft frontier``: privacy-utility frontiers over many runs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from privft.cli.common import console, fail


class Better(str, Enum):
    min = "min"
    max = "max"


DEFAULT_PANELS = "sensitive_gap,exposure_max,mia_auc,epsilon,train_time_s"


def frontier(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders with results.json.")],
    out: Annotated[Path, typer.Option(help="Folder for the plots and tables.")],
    x: Annotated[
        str,
        typer.Option(
            help="Measure on the x axis of the first panel: any measure in results.json, "
            "or a dotted path to a number in it (e.g. privacy.noise_multiplier)."
        ),
    ] = "sensitive_gap",
    y: Annotated[
        str, typer.Option(help="Measure on the y axis of every panel (usually utility).")
    ] = "test_nonsensitive_nll_nats",
    x_better: Annotated[
        Better | None,
        typer.Option(help="Whether lower (min) or higher (max) x is better; default per measure."),
    ] = None,
    y_better: Annotated[
        Better | None,
        typer.Option(help="Whether lower (min) or higher (max) y is better; default per measure."),
    ] = None,
    panels: Annotated[
        str,
        typer.Option(
            help="Comma-separated measures, each drawn against y in its own panel; put "
            "peak_memory_mb in place of train_time_s for a memory panel, or '' for none."
        ),
    ] = DEFAULT_PANELS,
    title: Annotated[str | None, typer.Option(help="Title of frontier.html.")] = None,
) -> None:
    """Draw privacy-utility frontiers of several runs: PNG, SVG, CSV, Markdown, JSON and HTML.

    Example: privft frontier runs/* --out frontier/ --x mia_auc --panels exposure_max,epsilon
    """
    from privft.frontier import FrontierError, build_frontier

    chosen = [name.strip() for name in panels.split(",") if name.strip()]
    try:
        summary = build_frontier(
            run_dirs,
            out,
            x=x,
            y=y,
            x_better=x_better.value if x_better else None,
            y_better=y_better.value if y_better else None,
            panels=chosen,
            title=title,
        )
    except FrontierError as err:
        fail(err)
    console.print(
        f"Pareto set ({x} {summary['x_better']}, {y} {summary['y_better']}): "
        f"{', '.join(summary['pareto'])}; wrote {out}/frontier.html, frontier.png, "
        "frontier.svg, frontier.csv, frontier.md, frontier.json",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(frontier)
