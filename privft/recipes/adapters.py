"""LoRA adapters through peft, with target modules chosen per architecture."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from privft.config import LoRASettings

# The attention and MLP projections of each transformer block, by Hugging Face model_type.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
for _name in ("mistral", "qwen2", "qwen3", "gemma", "gemma2", "smollm3"):
    DEFAULT_TARGETS[_name] = DEFAULT_TARGETS["llama"]


def lora_targets(model: torch.nn.Module, settings: LoRASettings) -> list[str] | str:
    """Return the configured targets, checked against the model's module names."""
    if settings.target_modules is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        return DEFAULT_TARGETS.get(model_type, "all-linear")
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    missing = [t for t in settings.target_modules if t not in leaf_names]
    if missing:
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
            }
        )
        raise ValueError(
            f"lora.target_modules {missing} not found in the model; "
            f"its linear modules are: {', '.join(linear)}"
        )
    return list(settings.target_modules)


@contextmanager
def _without_peft_deprecation() -> Iterator[None]:
    """Hide the FutureWarning that peft 0.21 triggers by calling a transformers 5 API it deprecates.

    The warning (``is_gradient_checkpointing`` is deprecated) comes from peft's own code, so
    privft's users can do nothing about it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def add_lora(model: torch.nn.Module, settings: LoRASettings) -> PeftModel:
    """Freeze the base model and add trainable LoRA adapters (B starts at zero)."""
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_targets(model, settings),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with _without_peft_deprecation():
        return get_peft_model(model, config)


def load_merged_adapter(base: torch.nn.Module, adapter_dir: str | Path) -> torch.nn.Module:
    """Load a saved LoRA adapter onto ``base`` and merge it into the base weights."""
    with _without_peft_deprecation():
        return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
