"""``privft data``: make or inspect datasets."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from privft.cli.common import console, fail

data_app = typer.Typer(
    help="Make or inspect datasets.", no_args_is_help=True, pretty_exceptions_show_locals=False
)


class Domain(str, Enum):
    customer_support = "customer_support"
    biographies = "biographies"


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write train/test/canaries JSONL into.")],
    domain: Annotated[
        Domain, typer.Option(help="Which synthetic domain.")
    ] = Domain.customer_support,
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
        fail(err)
    console.print(
        f"wrote {domain.value} data to {out}: {manifest.n_train} train records "
        f"+ {manifest.n_canary_insertions} canary insertions, {manifest.n_test} test "
        f"records, {len(manifest.insertions)} canaries",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
