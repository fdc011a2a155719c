"""DP-SGD on all weights: per-sample clipping, Gaussian noise, Poisson sampling (opacus)."""

from privft.recipes.base import Recipe, register


@register
class DPSGDRecipe(Recipe):
    name = "dp_sgd"
    uses_dp = True
