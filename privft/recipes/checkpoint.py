"""Training state on disk: written atomically, so a run killed at any moment can resume.

Layout under ``<run>/state/``: one folder per saved step (``step-000050/`` with the trainable
weights in safetensors, the optimizer and scheduler state, and ``trainer_state.json``), plus
``latest.json`` naming the newest complete folder. ``latest.json`` is replaced only after its
folder is fully written, so a crash mid-save leaves the previous checkpoint in force.

The final model goes to ``<run>/checkpoint/`` through ``checkpoint.tmp/``, swapped in only once
it is complete.

A model sharded over the ranks (``privft.distributed.shard_model``) is saved in the same files:
every rank takes part in gathering the full tensors, and rank 0 writes them. A checkpoint
therefore resumes with any number of processes, sharded or not.
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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from privft.distributed import is_main_process, is_sharded
from privft.models import local_files_quietly
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


# Full (unsharded) tensors on the CPU of rank 0. The other ranks get empty dicts.
GATHER_TO_RANK0 = StateDictOptions(full_state_dict=True, cpu_offload=True)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Return the trainable parameters as full CPU tensors, by parameter name.

    With a sharded model every rank must call this, because the parameters are gathered from
    all ranks. Only rank 0 gets the tensors and the other ranks get an empty dict.
    """
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if is_sharded(model):
        options = StateDictOptions(
            full_state_dict=True, cpu_offload=True, ignore_frozen_params=True
        )
        gathered = get_model_state_dict(model, options=options)
        return {name: gathered[name].contiguous() for name in names if name in gathered}
    params = dict(model.named_parameters())
    return {name: params[name].detach().cpu().contiguous() for name in names}


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Return the optimizer's state dict, keyed by parameter position as ``state_dict()`` is.

    With a sharded model every rank must call this: the state is gathered from all ranks, only
    rank 0 gets it, and the other ranks get an empty dict.
    """
    if not is_sharded(model):
        return optimizer.state_dict()
    gathered = get_optimizer_state_dict(model, optimizer, options=GATHER_TO_RANK0)
    if not is_main_process():
        return {}
    # The gathered state is keyed by parameter name. Number the names in parameter-group order,
    # as Optimizer.state_dict numbers the parameters, so the file matches an unsharded run's.
    positions: dict[str, int] = {}
    groups = []
    for group in gathered["param_groups"]:
        ids = []
        for name in group["params"]:
            positions[name] = len(positions)
            ids.append(positions[name])
        groups.append({**group, "params": ids})
    state = {positions[name]: value for name, value in gathered["state"].items()}
    return {"state": state, "param_groups": groups}


def _load_sharded_optimizer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]
) -> None:
    """Load a position-keyed optimizer state dict into the optimizer of a sharded model."""
    # The optimizer was built from the trainable parameters in this order, so position i is the
    # i-th name.
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    by_name = {
        "state": {names[position]: value for position, value in saved["state"].items()},
        "param_groups": [
            {**group, "params": [names[position] for position in group["params"]]}
            for group in saved["param_groups"]
        ],
    }
    set_optimizer_state_dict(
        model, optimizer, by_name, options=StateDictOptions(full_state_dict=True)
    )


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

    With a sharded model every rank must call this, because the weights and optimizer state are
    gathered from all ranks. Only rank 0 writes, and the other ranks return True once their
    shards are sent.
    """
    weights = trainable_state(model)
    optimizer_saved = optimizer_state(model, optimizer)
    if is_sharded(model) and not is_main_process():
        return True
    root = Path(run_dir) / "state"
    folder = root / f"step-{state.step:06d}"
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        save_file(weights, folder / "trainable.safetensors")
        torch.save(
            {"optimizer": optimizer_saved, "scheduler": scheduler.state_dict()},
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
    other than tensors and plain containers, which are never loaded. With a sharded model every
    rank must call this: each reads the full tensors and keeps its own slice.
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
    if is_sharded(model):
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(model, weights, options=options)
        _load_sharded_optimizer(model, optimizer, saved["optimizer"])
    else:
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])


def final_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Gather the full weights of a sharded model that ``save_final_model`` writes.

    Every rank must call this. Rank 0 gets CPU tensors and the other ranks get an empty dict: a
    peft model's trainable (adapter) weights, or any other model's whole state dict.
    """
    if hasattr(model, "get_base_model"):
        return trainable_state(model)
    state = get_model_state_dict(model, options=GATHER_TO_RANK0)
    # Gathering copies tied weights (GPT-2's embedding and output layer) into separate tensors.
    # Point each alias at one tensor again, so that save_pretrained drops the duplicates as it
    # does for the unsharded model.
    first_name: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        first = first_name.setdefault(id(param), name)
        if first != name and first in state:
            state[name] = state[first]
    return state


def save_final_model(
    run_dir: Path,
    model: torch.nn.Module,
    tokenizer: Any,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the final weights (safetensors) and tokenizer to ``<run>/checkpoint/``.

    ``state_dict`` replaces the model's own weights, for a sharded model whose full weights
    ``final_state_dict`` gathered. The files go to ``checkpoint.tmp/`` first and replace the old
    folder only when complete. On failure the partial folder is removed and a CheckpointError
    names the command to retry.
    """
    run_dir = Path(run_dir)
    final = run_dir / "checkpoint"
    tmp, old = run_dir / "checkpoint.tmp", run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with local_files_quietly():
            model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
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
