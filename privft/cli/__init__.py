"""The ``privft`` command line."""

from privft.cli.app import app

__all__ = ["app"]
