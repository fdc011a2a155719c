"""The evaluator: memorization, canary exposure, membership inference, utility and cost."""

from privft.evaluation.runner import evaluate_models, evaluate_run, flat_measures

__all__ = ["evaluate_models", "evaluate_run", "flat_measures"]
