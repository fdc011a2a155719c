"""``privft demo``: the main job in one command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from privft.cli.common import console, format_number
from privft.cli.data import Domain


def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, runs and the frontier.")] = Path(
        "privft-demo"
    ),
    domain: Annotated[Domain, typer.Option(help="Synthetic domain.")] = Domain.customer_support,
    epsilon: Annotated[float, typer.Option(help="Target epsilon of the DP recipes.")] = 8.0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Make data, train the four recipes on the built-in model, evaluate, draw the frontier.

    Example: privft demo --out privft-demo
    """
    from privft.demo import DemoPlan, run_demo

    logging.getLogger("privft").setLevel(logging.INFO)
    summary = run_demo(out, DemoPlan(domain=domain.value, epsilon=epsilon), show_progress=progress)
    table = Table(title="privft demo: privacy, utility and cost per recipe")
    for column in (
        "run",
        "sensitive_gap",
        "exposure r16",
        "mia_auc",
        "test NLL",
        "epsilon",
        "train s",
    ):
        table.add_column(column, justify="right")
    for point in summary["points"]:
        m = point["mean"]
        table.add_row(
            point["name"],
            *[
                format_number(m.get(k))
                for k in (
                    "sensitive_gap",
                    "exposure_r16",
                    "mia_auc",
                    "test_nonsensitive_nll_nats",
                    "epsilon",
                    "train_time_s",
                )
            ],
        )
    Console().print(table)
    console.print(
        f"done in {summary['demo_time_s']:.0f} s; frontier in {out}/frontier/", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
