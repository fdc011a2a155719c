"""Training state on disk: written atomically, so a run killed at any moment can resume.

Layout under ``<run>/state/``: one folder per saved step (``step-000050/`` with the trainable
weights in safetensors, the optimizer and scheduler state, and ``trainer_state.json``), plus
``latest.json`` naming the newest complete folder. ``latest.json`` is replaced only after its
folder is fully written, so a crash mid-save leaves the previous checkpoint in force.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from privft.storage import atomic_write_json

logger = logging.getLogger(__name__)


@dataclass
class TrainerState:
    """Counters and accountant history at a checkpoint."""

    step: int
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    peak_memory_mb: float = 0.0
    # opacus accountant history: [noise_multiplier, sample_rate, steps] per mechanism run.
    accountant_history: list[list[float]] = field(default_factory=list)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def save_training_state(
    run_dir: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
) -> None:
    """Save a resumable checkpoint; on failure the previous checkpoint stays in force."""
    root = Path(run_dir) / "state"
    folder = root / f"step-{state.step:06d}"
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        save_file(trainable_state(model), folder / "trainable.safetensors")
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
            folder / "optimizer.pt",
        )
        atomic_write_json(folder / "trainer_state.json", asdict(state))
        _fsync_dir(folder)
        atomic_write_json(root / "latest.json", {"folder": folder.name, "step": state.step})
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        logger.error(
            "saving the checkpoint of step %d failed (%s); the previous checkpoint is "
            "kept and training goes on",
            state.step,
            err,
        )
        return
    _remove_older(root, keep=folder.name)


def _fsync_dir(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _remove_older(root: Path, keep: str) -> None:
    for path in root.glob("step-*"):
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def load_training_state(run_dir: Path) -> tuple[TrainerState, Path] | None:
    """Return the latest complete checkpoint's state and folder, or None if there is none."""
    latest = Path(run_dir) / "state" / "latest.json"
    if not latest.exists():
        return None
    folder = latest.parent / json.loads(latest.read_text(encoding="utf-8"))["folder"]
    payload = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    return TrainerState(**payload), folder


def restore_training_state(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Load trainable weights, optimizer and scheduler state saved by ``save_training_state``."""
    weights = load_file(folder / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = sorted(set(weights) - set(params))
    if missing:
        raise RuntimeError(
            f"checkpoint {folder} has weights the model lacks: {missing[:3]}; "
            "was the run folder's config changed?"
        )
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    # weights_only=True: plain tensors and containers only, no arbitrary pickled objects.
    saved: dict[str, Any] = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
