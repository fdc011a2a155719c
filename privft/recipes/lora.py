"""LoRA fine-tuning: the base model is frozen and low-rank adapters train."""

import torch

from privft.config import TrainConfig
from privft.recipes.adapters import add_lora
from privft.recipes.base import Recipe, register


@register
class LoRARecipe(Recipe):
    name = "lora"
    uses_lora = True

    def make_trainable(self, model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
        return add_lora(model, config.lora)
