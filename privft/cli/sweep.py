"""``privft sweep``: train and evaluate a grid of runs from a YAML sweep file."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from privft.cli.common import console, fail


class Backend(str, Enum):
    local = "local"
    ray = "ray"


def sweep(
    sweep_file: Annotated[
        Path, typer.Argument(help="Sweep YAML (see recipes/sweeps/).", exists=True, dir_okay=False)
    ],
    out: Annotated[
        Path | None, typer.Option(help="Output folder; overrides the file's 'out'.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Write the run configs, print one shell command per run and train nothing.",
        ),
    ] = False,
    backend: Annotated[
        Backend, typer.Option(help="local: one run after another here; ray: one Ray task per run.")
    ] = Backend.local,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Address of a running Ray cluster (default: start a local instance)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only runs whose name matches this shell pattern (repeatable)."),
    ] = None,
    frontier: Annotated[
        bool, typer.Option(help="Draw one frontier per dataset under OUT/frontier/ at the end.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars (local backend).")] = False,
) -> None:
    """Train and evaluate every run of a sweep; finished runs are skipped, unfinished ones resume.

    Example: privft sweep recipes/sweeps/tiny.yaml --dry-run > runs.txt
    """
    from privft.frontier import FrontierError
    from privft.sweep import (
        SweepError,
        build_frontiers,
        check_run_folders,
        load_sweep,
        run_state,
        run_sweep,
        shell_commands,
        write_plan,
    )

    if ray_address is not None and backend is not Backend.ray:
        fail(ValueError(f"--ray-address {ray_address} needs --backend ray"))
    try:
        plan = load_sweep(sweep_file, out=out)
        runs = plan.select(only)
        if dry_run:
            check_run_folders(runs)
            write_plan(plan)
            for line in shell_commands(plan, runs):
                print(line)
            # On stderr, so that stdout stays one command per run for scheduler arrays.
            console.print(
                f"{len(runs)} commands written. When they have all finished, `privft sweep "
                f"{sweep_file}{f' --out {out}' if out else ''}` skips every run and draws the "
                f"frontiers under {plan.out}/frontier/",
                highlight=False,
                soft_wrap=True,
            )
            return
        states = Counter(run_state(run) for run in runs)
        console.print(
            f"sweep {plan.name}: {len(runs)} runs ({_counts(states)}) -> {plan.out}",
            highlight=False,
        )
        outcomes = run_sweep(
            plan,
            runs,
            backend=backend.value,
            ray_address=ray_address,
            show_progress=progress,
            on_outcome=_print_outcome,
        )
        folders = build_frontiers(plan) if frontier else {}
    except (SweepError, FrontierError) as err:
        fail(err)
    _print_summary(outcomes)
    for name, folder in folders.items():
        console.print(f"frontier of {name}: {folder}/frontier.html", highlight=False)
    failed = [o.name for o in outcomes if o.status == "failed"]
    if failed:
        fail(
            RuntimeError(
                f"{len(failed)} of {len(outcomes)} runs failed ({', '.join(failed)}). Their "
                "errors are printed above and kept in each run_info.json. Run the sweep again "
                "to resume them."
            )
        )


def _counts(states: Counter) -> str:
    return ", ".join(f"{count} {state}" for state, count in sorted(states.items()))


def _print_outcome(outcome) -> None:
    line = f"{outcome.status:9} {outcome.name}"
    if outcome.status != "skipped":
        line += f" ({outcome.seconds:.0f} s)"
    if outcome.error:
        line += f": {outcome.error}"
    console.print(line, highlight=False, markup=False)


def _print_summary(outcomes) -> None:
    table = Table(title="sweep runs")
    for column in ("status", "runs", "seconds"):
        table.add_column(column, justify="right")
    for status, count in sorted(Counter(o.status for o in outcomes).items()):
        seconds = sum(o.seconds for o in outcomes if o.status == status)
        table.add_row(status, str(count), f"{seconds:.0f}")
    Console(stderr=True).print(table)


def register(app: typer.Typer) -> None:
    app.command()(sweep)
