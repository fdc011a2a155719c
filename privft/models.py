"""Loading causal LMs and tokenizers: the built-in base model, a local folder or a hub id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer
from transformers.utils import logging as transformers_logging

from privft.config import BUILTIN_MODEL, ConfigError

logger = logging.getLogger(__name__)

BUILTIN_MODEL_DIR = Path(__file__).parent / "assets" / "base_model"
# Config files whose ``auto_map`` points transformers at Python files shipped with a model.
REMOTE_CODE_CONFIGS = ("config.json", "tokenizer_config.json")


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message names the source and the fix."""


def resolve_model_path(name_or_path: str) -> str:
    """Map ``builtin`` to the shipped model folder; pass other names through unchanged."""
    if name_or_path == BUILTIN_MODEL:
        if not (BUILTIN_MODEL_DIR / "config.json").exists():
            raise ModelLoadError(
                f"the built-in model is missing from {BUILTIN_MODEL_DIR}; "
                "rebuild it with `python scripts/build_base_model.py`"
            )
        return str(BUILTIN_MODEL_DIR)
    return name_or_path


def _read_config(folder: Path, name: str) -> dict:
    try:
        loaded = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _ships_code(path: str) -> bool:
    """Return True if a local model folder's configs point at Python files of its own."""
    folder = Path(path)
    return folder.is_dir() and any(
        _read_config(folder, name).get("auto_map") for name in REMOTE_CODE_CONFIGS
    )


def _check_remote_code(path: str, trust_remote_code: bool) -> None:
    """Log that a local folder ships its own Python code, which runs only when trusted."""
    if not trust_remote_code and _ships_code(path):
        logger.warning(
            "%s ships its own model code (auto_map); privft does not run it because "
            "trust_remote_code is off, and loads the model with transformers' built-in classes",
            path,
        )


def _remote_code_hint(path: str) -> str | None:
    if _ships_code(path):
        return (
            f"{path} needs its own Python code (auto_map in its config) to load. privft runs "
            "such code only when trust_remote_code=True is passed to privft.models.load_model "
            "and load_tokenizer; read the code before you allow it"
        )
    return None


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False) -> Tokenizer:
    """Load a fast tokenizer and make sure it has a pad token (the EOS token if none is set).

    Code shipped with the model runs only when ``trust_remote_code`` is True.
    """
    path = resolve_model_path(name_or_path)
    _check_remote_code(path, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_remote_code_hint(path) or _load_hint(path, "tokenizer")) from err
    if not tokenizer.is_fast:
        raise ModelLoadError(
            f"{path}: privft needs a fast tokenizer (offset mappings decide "
            "which tokens are sensitive); save the model with a tokenizer.json"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def pickle_only_weights(folder: Path) -> bool:
    """Return True if a model folder contains pickle weights (``*.bin``) and no safetensors."""
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return False
    return any(folder.glob("*.bin")) or any(folder.glob("*.bin.index.json"))


@contextmanager
def local_files_quietly(local: bool = True) -> Iterator[None]:
    """Turn off transformers' progress bars while it reads or writes local model files.

    transformers 5 draws a bar for every load and save of weights, which repeats on each privft
    command. A load that may download from a hub (``local=False``) keeps its bars.
    """
    if not local or not transformers_logging.is_progress_bar_enabled():
        yield
        return
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()


def load_model(
    name_or_path: str,
    *,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> PreTrainedModel:
    """Load a causal LM in eval mode, from safetensors weights only unless ``allow_pickle``.

    Pickle weights (``pytorch_model.bin``) can run code when loaded, so they are rejected
    unless ``allow_pickle`` is True. Code shipped with the model runs only when
    ``trust_remote_code`` is True.
    """
    path = resolve_model_path(name_or_path)
    if not allow_pickle and pickle_only_weights(Path(path)):
        raise ModelLoadError(
            f"{path} contains only pickle weights (*.bin), which can run code when loaded, so "
            "privft does not load them. Convert them once, where you trust the file: "
            "`AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)` writes "
            "model.safetensors. Or pass allow_pickle=True to privft.models.load_model"
        )
    _check_remote_code(path, trust_remote_code)
    try:
        with local_files_quietly(Path(path).is_dir()):
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                # None: safetensors where present, else pickle weights (allowed by the caller).
                use_safetensors=None if allow_pickle else True,
                trust_remote_code=trust_remote_code,
            )
    except (OSError, ValueError) as err:
        raise ModelLoadError(_remote_code_hint(path) or _load_hint(path, "model")) from err
    model.eval()
    return model


def _load_hint(path: str, what: str) -> str:
    if Path(path).exists():
        return (
            f"could not load the {what} from folder {path}; it needs config.json, "
            "safetensors weights and tokenizer files as written by save_pretrained"
        )
    return (
        f"could not load the {what} {path!r}: no such folder, and hub ids need network "
        "access and safetensors weights; pass a local folder, or `builtin` for the shipped model"
    )


def position_limit(model: torch.nn.Module) -> int | None:
    """Return the size of the model's position table, or None if its config has no such field."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_max_length(model: torch.nn.Module, max_length: int) -> None:
    """Raise ConfigError if records of ``max_length`` tokens do not fit the model's positions.

    Models with learned position embeddings (GPT-2) fail with an index error past the limit,
    and rotary ones (GPT-NeoX, Llama) run on positions they were never trained on.
    """
    limit = position_limit(model)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"max_length {max_length} exceeds the model's {limit} positions; "
            f"set max_length (--max-length) to {limit} or less"
        )


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Return (trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
