"""Recipes: full, LoRA, DP-SGD and DP-LoRA fine-tuning, importable and runnable from YAML.

Example:
    >>> from privft.config import TrainConfig
    >>> from privft.recipes import get_recipe
    >>> config = TrainConfig(recipe="dp_lora", data="data/", out="runs/dp_lora")
    >>> info = get_recipe(config.recipe)(config).run()  # doctest: +SKIP
"""

from privft.config import TrainConfig
from privft.recipes.base import RECIPES, Recipe, get_recipe
from privft.recipes.dp_lora import DPLoRARecipe
from privft.recipes.dp_sgd import DPSGDRecipe
from privft.recipes.full import FullRecipe
from privft.recipes.lora import LoRARecipe
from privft.recipes.runinfo import RunInfo


def train(config: TrainConfig, *, show_progress: bool = True) -> RunInfo:
    """Run the recipe that ``config.recipe`` names."""
    return get_recipe(config.recipe)(config).run(show_progress=show_progress)


__all__ = [
    "RECIPES",
    "DPLoRARecipe",
    "DPSGDRecipe",
    "FullRecipe",
    "LoRARecipe",
    "Recipe",
    "RunInfo",
    "get_recipe",
    "train",
]
