"""Loading causal LMs and tokenizers: the built-in base model, a local folder or a hub id."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from privft.config import BUILTIN_MODEL

logger = logging.getLogger(__name__)

BUILTIN_MODEL_DIR = Path(__file__).parent / "assets" / "base_model"


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message says where from and what to do."""


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


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False) -> Tokenizer:
    """Load a fast tokenizer and make sure it has a pad token (the EOS token if none is set)."""
    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(path, "tokenizer")) from err
    if not tokenizer.is_fast:
        raise ModelLoadError(
            f"{path}: privft needs a fast tokenizer (offset mappings decide "
            "which tokens are sensitive); save the model with a tokenizer.json"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_model(
    name_or_path: str,
    *,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """Load a causal LM from safetensors weights only (never pickle), in train mode off."""
    path = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(path, "model")) from err
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
        "access; pass a local folder, or `builtin` for the shipped model"
    )


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Return (trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
