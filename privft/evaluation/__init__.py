"""The evaluator: memorization, canary exposure, membership inference, extraction, utility, cost."""

from privft.evaluation.runner import evaluate_models, evaluate_pair, evaluate_run, flat_measures

__all__ = ["evaluate_models", "evaluate_pair", "evaluate_run", "flat_measures"]
