"""Training state on disk: written atomically, so a run killed at any moment can resume.

Layout under ``<run>/state/``: one folder per saved step (``step-000050/`` with the trainable
weights in safetensors, the optimizer and scheduler state, and ``trainer_state.json``), plus
``latest.json`` naming the newest complete folder. ``latest.json`` is replaced only after its
folder is fully written, so a crash mid-save leaves the previous checkpoint in force.

The final model goes to ``<run>/checkpoint/`` through ``checkpoint.tmp/``, swapped in only once
it is complete.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from privft.storage import atomic_write_json, fsync_dir

logger = logging.getLogger(__name__)

# Exceptions of a failed read or write: OSError from Python, RuntimeError from torch's zip
# reader and writer, SafetensorError from safetensors. A full disk shows up as any of the three.
IO_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError, SafetensorError)


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved or loaded; the message names the fix."""


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
) -> bool:
    """Save a resumable checkpoint and return True.

    A failed write (a full disk, a lost mount) is logged and returns False. The previous
    checkpoint then stays in force and training can go on.
    """
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
        _fsync_files(folder)
        atomic_write_json(root / "latest.json", {"folder": folder.name, "step": state.step})
    except IO_ERRORS as err:
        shutil.rmtree(folder, ignore_errors=True)
        previous = _latest_step(root)
        kept = (
            f"the checkpoint of step {previous} is kept"
            if previous is not None
            else "there is no earlier checkpoint, so a restart would begin at step 0"
        )
        logger.error(
            "saving the checkpoint of step %d to %s failed (%s: %s); %s and training goes on. "
            "Free disk space to let the next checkpoint succeed.",
            state.step,
            folder,
            type(err).__name__,
            err,
            kept,
        )
        return False
    _remove_older(root, keep=folder.name)
    return True


def _fsync_files(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def _latest_step(root: Path) -> int | None:
    try:
        return int(json.loads((root / "latest.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_older(root: Path, keep: str) -> None:
    for path in root.glob("step-*"):
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def load_training_state(run_dir: Path) -> tuple[TrainerState, Path] | None:
    """Return the latest complete checkpoint's state and folder, or None if there is none."""
    root = Path(run_dir) / "state"
    latest = root / "latest.json"
    if not latest.exists():
        return None
    try:
        folder = root / json.loads(latest.read_text(encoding="utf-8"))["folder"]
        payload = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        return TrainerState(**payload), folder
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"the checkpoint named by {latest} is missing or damaged ({type(err).__name__}: "
            f"{err}); restore the folder, or delete {root} to train from step 0"
        ) from err


def restore_training_state(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Load trainable weights, optimizer and scheduler state saved by ``save_training_state``.

    Raises CheckpointError when a file is damaged or the optimizer state contains pickled objects
    other than tensors and plain containers, which are never loaded.
    """
    try:
        weights = load_file(folder / "trainable.safetensors")
        # weights_only=True: plain tensors and containers only, no arbitrary pickled objects.
        saved: dict[str, Any] = torch.load(folder / "optimizer.pt", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{folder / 'optimizer.pt'} contains objects other than tensors and plain containers, "
            f"so it was not loaded; delete {folder.parent} to train from step 0"
        ) from err
    except (*IO_ERRORS, EOFError) as err:
        raise CheckpointError(
            f"the checkpoint in {folder} is damaged ({type(err).__name__}: {err}); delete "
            f"{folder.parent} to train from step 0"
        ) from err
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
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])


def save_final_model(run_dir: Path, model: torch.nn.Module, tokenizer: Any) -> None:
    """Write the final weights (safetensors) and tokenizer to ``<run>/checkpoint/``.

    The files go to ``checkpoint.tmp/`` first and replace the old folder only when complete. On
    failure the partial folder is removed and a CheckpointError names the command to retry.
    """
    run_dir = Path(run_dir)
    final = run_dir / "checkpoint"
    tmp, old = run_dir / "checkpoint.tmp", run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _fsync_files(tmp)
    except IO_ERRORS as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"saving the final model to {final} failed ({type(err).__name__}: {err}); the "
            f"resumable checkpoints in {run_dir / 'state'} are kept. Free disk space and run "
            f"`privft resume {run_dir}`"
        ) from err
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)
