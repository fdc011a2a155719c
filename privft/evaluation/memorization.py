"""Memorization of sensitive vs non-sensitive tokens, fine-tuned model against its base.

sensitive_gap = (test sensitive NLL - train sensitive NLL) under the fine-tuned model, minus the
same difference under the base model: the likelihood advantage that training PII gained over
unseen PII of the same kinds. Larger means more memorization of personal information.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from privft.evaluation.scoring import TokenScores
from privft.evaluation.statistics import bootstrap_interval

SPLITS = ("train", "test")
MODELS = ("finetuned", "base")


@dataclass
class RecordSums:
    """Per-record sums for one model and split, by token class: arrays of shape [records]."""

    sens_nll: np.ndarray
    sens_correct: np.ndarray
    sens_count: np.ndarray
    plain_nll: np.ndarray
    plain_correct: np.ndarray
    plain_count: np.ndarray

    @classmethod
    def from_scores(cls, scores: Sequence[TokenScores]) -> RecordSums:
        rows = []
        for s in scores:
            mask = s.sensitive
            rows.append(
                (
                    s.nll[mask].sum(),
                    s.correct[mask].sum(),
                    mask.sum(),
                    s.nll[~mask].sum(),
                    s.correct[~mask].sum(),
                    (~mask).sum(),
                )
            )
        columns = np.array(rows, dtype=np.float64).reshape(-1, 6).T
        return cls(*columns)

    def mean_nll(self, sensitive: bool, index: np.ndarray | None = None) -> float:
        nll, count = (
            (self.sens_nll, self.sens_count) if sensitive else (self.plain_nll, self.plain_count)
        )
        if index is not None:
            nll, count = nll[index], count[index]
        total = count.sum()
        return float(nll.sum() / total) if total else float("nan")

    def summary(self, sensitive: bool) -> dict[str, float]:
        correct, count = (
            (self.sens_correct, self.sens_count)
            if sensitive
            else (self.plain_correct, self.plain_count)
        )
        total = count.sum()
        return {
            "nll_nats": self.mean_nll(sensitive),
            "accuracy": float(correct.sum() / total) if total else float("nan"),
            "tokens": int(total),
        }


def _gap(
    sums: dict[tuple[str, str], RecordSums],
    sensitive: bool,
    train_idx: np.ndarray | None = None,
    test_idx: np.ndarray | None = None,
) -> float:
    def diff(model: str) -> float:
        return sums[model, "test"].mean_nll(sensitive, test_idx) - sums[model, "train"].mean_nll(
            sensitive, train_idx
        )

    return diff("finetuned") - diff("base")


def memorization_report(
    scores: dict[tuple[str, str], Sequence[TokenScores]], *, resamples: int = 1000, seed: int = 0
) -> dict:
    """Per split, token class and model: NLL and accuracy; the gaps with 95% bootstrap intervals.

    ``scores`` maps (model, split) to the records' token scores, with model in
    ``("finetuned", "base")`` and split in ``("train", "test")``; train and test records are
    resampled independently for the intervals.
    """
    sums = {key: RecordSums.from_scores(value) for key, value in scores.items()}
    tables = {
        model: {
            split: {
                "sensitive": sums[model, split].summary(True),
                "nonsensitive": sums[model, split].summary(False),
            }
            for split in SPLITS
        }
        for model in MODELS
    }
    sizes = (len(scores["finetuned", "train"]), len(scores["finetuned", "test"]))
    gains = sums["base", "train"].mean_nll(True) - sums["finetuned", "train"].mean_nll(True)
    return {
        **tables,
        "sensitive_gap": _gap(sums, True),
        "sensitive_gap_ci95": bootstrap_interval(
            lambda tr, te: _gap(sums, True, tr, te), sizes, resamples=resamples, seed=seed
        ),
        "nonsensitive_gap": _gap(sums, False),
        "nonsensitive_gap_ci95": bootstrap_interval(
            lambda tr, te: _gap(sums, False, tr, te), sizes, resamples=resamples, seed=seed
        ),
        "sensitive_gain": gains,
        "by_kind": _by_kind(scores),
    }


def _by_kind(scores: dict[tuple[str, str], Sequence[TokenScores]]) -> dict[str, dict]:
    """NLL per PII kind for each model and split, and each kind's gap."""
    totals: dict[tuple[str, str, str], list[float]] = {}
    for (model, split), records in scores.items():
        for record in records:
            for nll, label in zip(record.nll, record.labels, strict=True):
                if label is not None:
                    entry = totals.setdefault((label, model, split), [0.0, 0])
                    entry[0] += float(nll)
                    entry[1] += 1
    kinds = sorted({label for label, _, _ in totals})
    report: dict[str, dict] = {}
    for kind in kinds:
        means = {
            (m, s): (totals[kind, m, s][0] / totals[kind, m, s][1])
            if (kind, m, s) in totals
            else float("nan")
            for m in MODELS
            for s in SPLITS
        }
        report[kind] = {
            **{f"{m}_{s}_nll_nats": means[m, s] for m in MODELS for s in SPLITS},
            "gap": (means["finetuned", "test"] - means["finetuned", "train"])
            - (means["base", "test"] - means["base", "train"]),
        }
    return report
