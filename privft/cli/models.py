"""``privft models``: real pretrained models that install offline from PyPI packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from privft.cli.common import console, fail

models_app = typer.Typer(
    help="Real pretrained models that install from PyPI packages, without a model hub.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@models_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Model name, as `privft models list` shows it.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write the model into (default: $PRIVFT_HOME/models/NAME)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Convert again over an existing folder.")] = False,
) -> None:
    """Convert a packaged model into a Hugging Face folder to pass as --model.

    Example: privft models add smollm2 --out models/smollm2
    """
    from privft.zoo import ZooError, add_model

    try:
        folder = add_model(name, out, force=force)
    except (ZooError, OSError) as err:
        fail(err)
    console.print(f"{name}: model folder {folder}; train with --model {folder}", highlight=False)


@models_app.command("list")
def list_command() -> None:
    """List the packaged models, whether each one's package is installed and converted."""
    from privft.zoo import list_models

    table = Table(title="privft models")
    for column in ("name", "package", "installed", "converted to", "description"):
        table.add_column(column)
    for row in list_models():
        table.add_row(
            row["name"],
            row["package"],
            "yes" if row["installed"] else "no",
            row["folder"] if row["converted"] else "-",
            row["description"],
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
