"""Shared pieces of the command line: the error exit and console."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(err: Exception) -> NoReturn:
    """Print ``error: ...`` to stderr and exit with status 1 (no traceback, no local values)."""
    print(f"error: {err}", file=sys.stderr)
    raise typer.Exit(code=1)


def format_number(value) -> str:
    return "-" if value is None else f"{value:.4g}"
