"""Experiment tracking through accelerate's trackers, written to the run folder, never a server.

``report_to`` in a run's config names the trackers:

- ``tensorboard``: event files under ``<run>/tracking/privft/``;
- ``mlflow``: a file store at ``file:<run>/mlruns``;
- ``wandb``: offline mode, files under ``<run>/tracking/wandb/`` (``wandb sync`` uploads them).

Training logs loss, epsilon, learning rate and tokens per second at every log step, and
``privft eval`` adds the evaluation measures to the same tracker run at the last step.

The ids of the MLflow and wandb runs are kept in ``<run>/tracking/ids.json``, so a resumed run
and its evaluation append to the run that training started.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from privft.config import TRACKER_NAMES

logger = logging.getLogger(__name__)

TRACKERS = TRACKER_NAMES
PROJECT = "privft"
# The module each tracker imports, and the command that installs it.
_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
INSTALL = {
    "tensorboard": 'pip install "privft[tracking]"',
    "mlflow": 'pip install "privft[tracking]"',
    "wandb": "pip install wandb",
}
IDS_FILE = "ids.json"

# No tracker may reach a server: MLflow's usage reports are switched off before mlflow is
# imported, its local file store is allowed, and wandb runs offline.
_OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ALLOW_FILE_STORE": "true",
    "WANDB_MODE": "offline",
}


class TrackingError(ValueError):
    """A tracker name is unknown or its package is missing; the message names the fix."""


def check_report_to(names: Iterable[str]) -> list[str]:
    """Return ``names`` without repeats; raise TrackingError for an unknown or missing tracker."""
    chosen: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise TrackingError(
                f"unknown tracker {name!r} in report_to; valid: {', '.join(TRACKERS)}"
            )
        if name not in chosen:
            chosen.append(name)
    missing = [name for name in chosen if importlib.util.find_spec(_MODULES[name]) is None]
    if missing:
        commands = sorted({INSTALL[name] for name in missing})
        raise TrackingError(
            f"report_to names {', '.join(missing)}, which is not installed; install it with "
            f"`{'` and `'.join(commands)}`, or drop it from --report-to"
        )
    return chosen


def flat_config(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings to ``a.b`` keys with bool, int, float or str values."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, prefix=f"{name}."))
        elif value is None or isinstance(value, (list, tuple)):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def numbers_only(values: Mapping[str, Any]) -> dict[str, float]:
    """Keep the finite numbers of ``values`` (trackers reject None, NaN and text in a metric)."""
    kept = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            kept[key] = float(value)
    return kept


class RunTracker:
    """The trackers of one run folder, opened through an accelerate ``Accelerator``."""

    def __init__(self, run_dir: Path, report_to: Iterable[str], *, config: Mapping | None = None):
        self.run_dir = Path(run_dir)
        self.names = check_report_to(report_to)
        self.accelerator = None
        if not self.names:
            return
        import torch
        from accelerate import Accelerator

        for key, value in _OFFLINE_ENV.items():
            os.environ[key] = value
        folder = self.run_dir / "tracking"
        folder.mkdir(parents=True, exist_ok=True)
        # A resumed run keeps the settings it was started with: ids.json marks a started run.
        first = not self._ids_path().exists()
        ids = self._read_ids()
        init_kwargs: dict[str, dict[str, Any]] = {}
        if "mlflow" in self.names:
            import mlflow

            self._previous_uri = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(self.mlflow_uri)
            init_kwargs["mlflow"] = {"run_id": ids.get("mlflow"), "run_name": self.run_dir.name}
        if "wandb" in self.names:
            init_kwargs["wandb"] = {
                "mode": "offline",
                "dir": str(folder),
                "name": self.run_dir.name,
                "id": ids.get("wandb"),
                "resume": "allow",
            }
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(), log_with=self.names, project_dir=folder
        )
        self.accelerator.init_trackers(
            PROJECT,
            config=flat_config(config) if config is not None and first else None,
            init_kwargs=init_kwargs,
        )
        self._write_ids()

    @property
    def mlflow_uri(self) -> str:
        return f"file:{(self.run_dir / 'mlruns').resolve()}"

    def _ids_path(self) -> Path:
        return self.run_dir / "tracking" / IDS_FILE

    def _read_ids(self) -> dict[str, str]:
        try:
            loaded = json.loads(self._ids_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _write_ids(self) -> None:
        from privft.storage import atomic_write_json

        ids = self._read_ids()
        if "mlflow" in self.names:
            ids["mlflow"] = self.accelerator.get_tracker("mlflow").tracker.info.run_id
        if "wandb" in self.names:
            ids["wandb"] = self.accelerator.get_tracker("wandb").tracker.id
        atomic_write_json(self._ids_path(), ids)

    def log(self, values: Mapping[str, Any], step: int) -> None:
        """Log the finite numbers among ``values`` at ``step``."""
        numbers = numbers_only(values)
        if self.accelerator is not None and numbers:
            self.accelerator.log(numbers, step=step)

    def close(self) -> None:
        """Flush and close every tracker; later calls do nothing."""
        if self.accelerator is None:
            return
        accelerator, self.accelerator = self.accelerator, None
        try:
            accelerator.end_training()
        finally:
            if "mlflow" in self.names:
                import mlflow

                mlflow.set_tracking_uri(self._previous_uri)


TRAIN_KEYS = {
    "loss": "train/loss",
    "epsilon": "train/epsilon",
    "lr": "train/learning_rate",
    "tokens_per_s": "train/tokens_per_s",
}


def train_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """Map a train_log.jsonl row to tracker names."""
    return {name: row.get(key) for key, name in TRAIN_KEYS.items()}


def open_run_tracker(run_dir: Path, config, *, is_main: bool = True) -> RunTracker:
    """Open the trackers in the run's ``report_to``; none off the main process."""
    names = list(getattr(config, "report_to", None) or []) if is_main else []
    return RunTracker(run_dir, names, config=config.to_dict() if names else None)


def log_evaluation(run_dir: Path, results: Mapping[str, Any]) -> list[str]:
    """Add a results.json's measures to the run's trackers at its last step; return their names.

    Does nothing (and returns an empty list) when the run's ``report_to`` is empty. A tracker
    that is no longer installed is logged as a warning: results.json is written by then.
    """
    from privft.config import read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if not config.report_to:
        return []
    step = int((results.get("cost") or {}).get("steps") or 0)
    values = {f"eval/{key}": value for key, value in (results.get("measures") or {}).items()}
    for key, value in (results.get("downstream") or {}).get("scores", {}).items():
        values[f"downstream/{key}"] = value
    try:
        tracker = RunTracker(run_dir, config.report_to)
    except TrackingError as err:
        logger.warning("evaluation measures not sent to the run's trackers: %s", err)
        return []
    try:
        tracker.log(values, step=step)
    finally:
        tracker.close()
    return tracker.names
