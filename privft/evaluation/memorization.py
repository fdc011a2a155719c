"""Memorization of sensitive vs non-sensitive tokens, fine-tuned model against its base.

sensitive_gap = (test sensitive NLL - train sensitive NLL) under the fine-tuned model, minus the
same difference under the base model: the likelihood advantage that training PII gained over
unseen PII of the same kinds. Larger means more memorization of personal information.

sensitive_gain = base NLL - fine-tuned NLL on the training records' sensitive tokens: how much
fine-tuning made the training PII more likely, without the held-out control.

Every NLL is a token-weighted mean (total nats over total tokens of the class), and every
interval is a 95% percentile bootstrap over records, with train and test records resampled
independently and the same resampled records scored under both models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from privft.evaluation.scoring import TokenScores
from privft.evaluation.statistics import bootstrap_intervals, weighted_mean

SPLITS = ("train", "test")
MODELS = ("finetuned", "base")

Selector = Callable[[TokenScores], np.ndarray]


@dataclass
class ClassSums:
    """Per-record sums over one class of target tokens: arrays of shape [records]."""

    nll: np.ndarray
    correct: np.ndarray
    count: np.ndarray

    @classmethod
    def from_scores(cls, scores: Sequence[TokenScores], select: Selector) -> ClassSums:
        rows = np.zeros((len(scores), 3), dtype=np.float64)
        for row, record in enumerate(scores):
            mask = select(record)
            rows[row] = (record.nll[mask].sum(), record.correct[mask].sum(), mask.sum())
        return cls(rows[:, 0], rows[:, 1], rows[:, 2])

    def mean_nll(self, weights: np.ndarray | None = None) -> np.ndarray | float:
        """Token-weighted mean NLL, or one per resample for a [resamples, records] weight."""
        if weights is None:
            total = self.count.sum()
            return float(self.nll.sum() / total) if total else float("nan")
        return weighted_mean(weights, self.nll, self.count)

    def summary(self) -> dict[str, float]:
        total = self.count.sum()
        return {
            "nll_nats": self.mean_nll(),
            "accuracy": float(self.correct.sum() / total) if total else float("nan"),
            "tokens": int(total),
            "records": int((self.count > 0).sum()),
        }


def _is_sensitive(record: TokenScores) -> np.ndarray:
    return record.sensitive


def _is_plain(record: TokenScores) -> np.ndarray:
    return ~record.sensitive


def _is_kind(kind: str) -> Selector:
    return lambda record: np.array([label == kind for label in record.labels], dtype=bool)


class ClassTable:
    """ClassSums of one token class for each (model, split), with the derived differences."""

    def __init__(self, scores: dict[tuple[str, str], Sequence[TokenScores]], select: Selector):
        self.sums = {key: ClassSums.from_scores(value, select) for key, value in scores.items()}

    def measures(self, train_weights=None, test_weights=None) -> dict[str, np.ndarray | float]:
        """Compute each model's train and test NLL, the gap and the train and test gains.

        Without weights the values are the point estimates; with [resamples, records] weights
        for each split they are arrays with one value per resample.
        """
        weights = {"train": train_weights, "test": test_weights}
        nll = {(m, s): self.sums[m, s].mean_nll(weights[s]) for m in MODELS for s in SPLITS}
        values = {f"{m}_{s}_nll_nats": nll[m, s] for m in MODELS for s in SPLITS}
        values["gap"] = (nll["finetuned", "test"] - nll["finetuned", "train"]) - (
            nll["base", "test"] - nll["base", "train"]
        )
        values["train_gain"] = nll["base", "train"] - nll["finetuned", "train"]
        values["test_gain"] = nll["base", "test"] - nll["finetuned", "test"]
        return values

    def with_intervals(self, sizes: tuple[int, int], resamples: int, seed: int) -> dict:
        estimates = self.measures()
        names = list(estimates)

        def statistics(train_weights: np.ndarray, test_weights: np.ndarray) -> np.ndarray:
            values = self.measures(train_weights, test_weights)
            return np.stack([np.asarray(values[name], dtype=np.float64) for name in names], 1)

        intervals = bootstrap_intervals(statistics, sizes, resamples=resamples, seed=seed)
        report: dict = {}
        for name, interval in zip(names, intervals, strict=True):
            report[name] = float(estimates[name])
            report[f"{name}_ci95"] = interval
        return report


def memorization_report(
    scores: dict[tuple[str, str], Sequence[TokenScores]], *, resamples: int = 1000, seed: int = 0
) -> dict:
    """Per split, token class and model: NLL and accuracy; gaps and gains with intervals.

    ``scores`` maps (model, split) to the records' token scores, with model in
    ``("finetuned", "base")`` and split in ``("train", "test")``. Both models must score the
    same records in the same order. ``by_kind`` repeats the fine-tuned vs base comparison for each
    PII kind.
    """
    sizes = (len(scores["finetuned", "train"]), len(scores["finetuned", "test"]))
    sensitive = ClassTable(scores, _is_sensitive)
    plain = ClassTable(scores, _is_plain)
    tables = {
        model: {
            split: {
                "sensitive": sensitive.sums[model, split].summary(),
                "nonsensitive": plain.sums[model, split].summary(),
            }
            for split in SPLITS
        }
        for model in MODELS
    }
    sensitive_stats = sensitive.with_intervals(sizes, resamples, seed)
    plain_stats = plain.with_intervals(sizes, resamples, seed)
    return {
        **tables,
        "sensitive_gap": sensitive_stats["gap"],
        "sensitive_gap_ci95": sensitive_stats["gap_ci95"],
        "nonsensitive_gap": plain_stats["gap"],
        "nonsensitive_gap_ci95": plain_stats["gap_ci95"],
        "sensitive_gain": sensitive_stats["train_gain"],
        "sensitive_gain_ci95": sensitive_stats["train_gain_ci95"],
        "by_kind": _by_kind(scores, sizes, resamples, seed),
    }


def _by_kind(
    scores: dict[tuple[str, str], Sequence[TokenScores]],
    sizes: tuple[int, int],
    resamples: int,
    seed: int,
) -> dict[str, dict]:
    """Compare the models on each PII kind: NLL per split, the gap and the gains, with intervals."""
    kinds = sorted(
        {label for records in scores.values() for r in records for label in r.labels if label}
    )
    report: dict[str, dict] = {}
    for kind in kinds:
        table = ClassTable(scores, _is_kind(kind))
        report[kind] = {
            **table.with_intervals(sizes, resamples, seed),
            "tokens": {s: int(table.sums["finetuned", s].count.sum()) for s in SPLITS},
        }
    return report
