"""Export a run's model in the formats other tools load directly.

A full or DP-SGD run's ``checkpoint/`` is already a Hugging Face model folder, and a LoRA or
DP-LoRA run's is a peft adapter folder. ``export_run`` copies either one to a folder of its own
and, with ``merge=True``, folds a LoRA adapter into its base model so that the result is a
standalone model for ``AutoModelForCausalLM.from_pretrained``. ``privft_export.json`` in the
exported folder records the source run and, for DP runs, the privacy guarantee. The guarantee
still applies to the exported weights, because merging and copying only post-process the
trained model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from privft.storage import atomic_write_json, fsync_dir

EXPORT_FILE = "privft_export.json"


class ExportError(RuntimeError):
    """The run cannot be exported; the message names the fix."""


def _checkpoint(run_dir: Path) -> Path:
    from privft.recipes.runinfo import read_run_info

    info = read_run_info(run_dir)
    checkpoint = run_dir / "checkpoint"
    if info is None or info.status != "completed" or not checkpoint.is_dir():
        status = info.status if info else "missing"
        raise ExportError(
            f"{run_dir}: training status is {status!r}, not completed, so there is no final "
            f"model to export; finish it with `privft resume {run_dir}`"
        )
    return checkpoint


def _privacy(run_dir: Path) -> dict[str, Any] | None:
    try:
        ledger = json.loads((run_dir / "privacy.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "accountant")
    return {key: ledger.get(key) for key in keys if key in ledger}


def export_run(run_dir: Path, out: Path, *, merge: bool = False) -> dict[str, Any]:
    """Write the run's model to ``out``; return what ``privft_export.json`` records.

    LoRA runs give the adapter folder (for ``PeftModel.from_pretrained``), or with ``merge`` a
    merged standalone model. Full runs give the model folder; ``merge`` changes nothing there.
    ``out`` must not exist or be empty; it appears only once complete.
    """
    from privft.config import read_run_config
    from privft.models import resolve_model_path

    run_dir, out = Path(run_dir), Path(out)
    checkpoint = _checkpoint(run_dir)
    config = read_run_config(run_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not empty; pass a new or empty folder")
    adapter = (checkpoint / "adapter_config.json").is_file()
    base_path = resolve_model_path(config.model)
    if adapter and merge:
        kind = "merged"
    elif adapter:
        kind = "adapter"
    else:
        kind = "model"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if kind == "merged":
            _write_merged(checkpoint, base_path, tmp)
        else:
            shutil.copytree(checkpoint, tmp)
            if kind == "adapter":
                _point_at_base(tmp, base_path)
        record = {
            "kind": kind,
            "run_dir": str(run_dir.resolve()),
            "recipe": config.recipe,
            "base_model": config.model,
            "base_model_path": str(base_path),
            "privacy": _privacy(run_dir),
        }
        atomic_write_json(tmp / EXPORT_FILE, record)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
        fsync_dir(out.parent)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(
            f"writing {out} failed ({type(err).__name__}: {err}); free disk space and rerun"
        ) from err
    return record


def _write_merged(checkpoint: Path, base_path: str, out: Path) -> None:
    from privft.models import load_model, load_tokenizer
    from privft.recipes.adapters import load_merged_adapter

    merged = load_merged_adapter(load_model(base_path), checkpoint)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(str(checkpoint)).save_pretrained(out)


def _point_at_base(folder: Path, base_path: str) -> None:
    """Name the base model's folder in the adapter config, so that peft finds it from anywhere."""
    path = folder / "adapter_config.json"
    adapter_config = json.loads(path.read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = str(base_path)
    atomic_write_json(path, adapter_config)
