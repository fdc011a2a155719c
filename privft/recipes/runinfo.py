"""``run_info.json``: status, timing, memory and size facts of a training run."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from privft.config import TrainConfig
from privft.storage import atomic_write_json

PACKAGES = ("privft", "torch", "transformers", "peft", "opacus", "accelerate", "tokenizers")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class RunInfo:
    """Outcome of a training run; ``status`` is running, completed, failed or interrupted."""

    recipe: str
    status: str = "running"
    error: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    commit: str | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def started(cls, config: TrainConfig) -> RunInfo:
        return cls(
            recipe=config.recipe,
            started_at=_now(),
            commit=git_commit(),
            environment={"packages": package_versions(), "hardware": hardware()},
        )

    def complete(self, **cost: Any) -> None:
        self.status = "completed"
        self.error = None
        self.finished_at = _now()
        steps = cost["steps"]
        cost["time_per_step_s"] = cost["train_time_s"] / steps if steps else None
        cost["tokens_per_s"] = cost["tokens_seen"] / max(1e-9, cost["train_time_s"])
        self.cost = cost


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    atomic_write_json(Path(run_dir) / "run_info.json", asdict(info))


def read_run_info(run_dir: Path) -> RunInfo | None:
    path = Path(run_dir) / "run_info.json"
    if not path.exists():
        return None
    return RunInfo(**json.loads(path.read_text(encoding="utf-8")))
