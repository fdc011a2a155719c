"""Full fine-tuning: every weight trains, no privacy mechanism."""

from privft.recipes.base import Recipe, register


@register
class FullRecipe(Recipe):
    name = "full"
