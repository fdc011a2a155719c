"""Progress reporting for loops a person waits for: a Rich bar on a terminal, log lines elsewhere.

Progress shows step counts, loss and epsilon only; never text or secrets.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

logger = logging.getLogger(__name__)


class ProgressBar:
    """A context manager: ``update(advance, **fields)`` moves the bar and shows the fields."""

    def __init__(
        self, description: str, total: int, *, enabled: bool = True, log_interval_s: float = 10.0
    ):
        self.description = description
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.log_interval_s = log_interval_s
        self._last_log = 0.0
        self._fields: dict[str, str] = {}
        console = Console(stderr=True)
        self._live = enabled and console.is_terminal
        self._progress: Progress | None = None
        if self._live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total, info="")

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self.enabled and exc is None:
            self._log()

    def update(self, advance: int = 1, **fields: float | int | str) -> None:
        self.done += advance
        self._fields.update({k: _format(v) for k, v in fields.items()})
        info = "  ".join(f"{k} {v}" for k, v in self._fields.items())
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, info=info)
        elif self.enabled and time.monotonic() - self._last_log >= self.log_interval_s:
            self._log()

    def _log(self) -> None:
        self._last_log = time.monotonic()
        info = "  ".join(f"{k} {v}" for k, v in self._fields.items())
        print(f"{self.description}: {self.done}/{self.total}  {info}", file=sys.stderr, flush=True)


def _format(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
