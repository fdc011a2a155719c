"""DP-SGD on LoRA adapters only: the frozen base gets no gradients, adapters are privatized."""

from privft.recipes.base import register
from privft.recipes.lora import LoRARecipe


@register
class DPLoRARecipe(LoRARecipe):
    name = "dp_lora"
    uses_dp = True
