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


class TagEngine(str, Enum):
    builtin = "builtin"
    presidio = "presidio"


@data_app.command("tag")
def tag(
    source: Annotated[
        Path, typer.Argument(help="JSONL records to tag.", exists=True, dir_okay=False)
    ],
    out: Annotated[Path, typer.Option(help="JSONL file to write the tagged records to.")],
    engine: Annotated[
        TagEngine,
        typer.Option(
            help="builtin: patterns (email, phone, card, account, date, postal code); presidio: "
            'Presidio\'s recognizers on a blank spaCy pipeline (pip install "privft\\[presidio]").'
        ),
    ] = TagEngine.builtin,
) -> None:
    """Add PII spans to records that lack them; spans already present are kept.

    Example: privft data tag raw/train.jsonl --out data/mine/train.jsonl
    """
    from privft.data.tagging import tag_file

    if out.resolve() == source.resolve():
        fail(ValueError(f"--out {out} is the input file; write the tagged records elsewhere"))
    try:
        count, added = tag_file(source, out, engine=engine.value)
    except (ValueError, OSError) as err:
        fail(err)
    found = ", ".join(f"{label} {n}" for label, n in sorted(added.items())) or "none"
    console.print(f"tagged {count} records into {out}; spans added: {found}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
