"""The ``privft`` command line: thin wrappers that parse options and call the library.

Each command group lives in its own module and registers itself on ``app`` here.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Annotated

import typer

app = typer.Typer(
    help="Measure what fine-tuning a causal LM costs in privacy, utility and compute.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    # opacus's per-sample hooks trigger this torch notice on every frozen-input backward.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")


def _register() -> None:
    from privft.cli import data, demo, evaluate, export, frontier, models, report, sweep, train

    for module in (data, train, evaluate, frontier, report, sweep, demo, models, export):
        module.register(app)


_register()
