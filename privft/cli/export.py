"""``privft export``: a run's model as a folder other tools load directly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privft.cli.common import console, fail


def export(
    run_dir: Annotated[
        Path, typer.Argument(help="Completed run folder.", exists=True, file_okay=False)
    ],
    out: Annotated[Path, typer.Option(help="New folder to write the model into.")],
    merge: Annotated[
        bool,
        typer.Option(
            help="Fold a LoRA adapter into its base model: a standalone model folder for "
            "AutoModelForCausalLM. Without it a LoRA run exports its adapter (PeftModel)."
        ),
    ] = False,
) -> None:
    """Export a run's model: the adapter or a merged model for LoRA runs, the model otherwise.

    Example: privft export runs/dp_lora --out exported/dp_lora --merge
    """
    from privft.export import ExportError, export_run

    try:
        record = export_run(run_dir, out, merge=merge)
    except (ExportError, ValueError, OSError) as err:
        fail(err)
    loader = {
        "adapter": "PeftModel.from_pretrained(base, folder)",
        "merged": "AutoModelForCausalLM.from_pretrained(folder)",
        "model": "AutoModelForCausalLM.from_pretrained(folder)",
    }[record["kind"]]
    console.print(f"wrote {record['kind']} to {out}; load it with {loader}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(export)
