"""The recipe interface and registry: a recipe decides what is trained and how it is privatized."""

from __future__ import annotations

from typing import ClassVar

import torch

from privft.config import RECIPE_NAMES, ConfigError, TrainConfig
from privft.recipes.runinfo import RunInfo


class Recipe:
    """Base class: subclasses set ``name`` and override ``make_trainable`` when needed."""

    name: ClassVar[str]
    uses_lora: ClassVar[bool] = False
    uses_dp: ClassVar[bool] = False

    def __init__(self, config: TrainConfig):
        if config.recipe != self.name:
            raise ConfigError(
                f"{type(self).__name__} runs recipe {self.name!r}, but the config "
                f"says {config.recipe!r}; build the config with recipe={self.name!r}"
            )
        self.config = config

    def make_trainable(self, model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
        """Return the model with exactly the parameters this recipe trains left trainable."""
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def run(self, *, show_progress: bool = True) -> RunInfo:
        """Train into ``config.out`` (resuming from its last checkpoint) and return the run info."""
        from privft.recipes.trainer import Trainer

        trainer = Trainer(
            self.config, make_trainable=self.make_trainable, show_progress=show_progress
        )
        return trainer.fit()


RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    RECIPES[cls.name] = cls
    return cls


def get_recipe(name: str) -> type[Recipe]:
    """Look up a recipe class by name; an unknown name lists the valid ones."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid: {', '.join(RECIPE_NAMES)}")
    return RECIPES[name]
