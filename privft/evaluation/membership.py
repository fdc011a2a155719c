"""Membership inference: can an attacker tell training records from held-out ones?

Members are the training records (canary insertions excluded), non-members the test records.
Each score is oriented so that higher means "more likely a member":
- ``loss``: minus the record's mean NLL (Yeom et al., "Privacy Risk in Machine Learning:
  Analyzing the Connection to Overfitting", 2018).
- ``calibrated``: base-model NLL minus fine-tuned NLL, the reference-model calibration of
  Carlini et al., "Extracting Training Data from Large Language Models" (2021).
AUC 0.5 is chance; higher means more risk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from privft.evaluation.scoring import TokenScores
from privft.evaluation.statistics import bootstrap_interval


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Highest true-positive rate over thresholds whose false-positive rate is <= the target."""
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= fpr_target
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def rank_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over both groups' sizes (ties count half).

    Equal to scikit-learn's roc_auc_score and about 100 times faster, which matters inside a
    bootstrap of 1000 resamples.
    """
    ranks = rankdata(np.concatenate([member_scores, nonmember_scores]))
    n1, n0 = len(member_scores), len(nonmember_scores)
    u_statistic = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u_statistic / (n1 * n0))


def _finite_ranking(scores: np.ndarray) -> np.ndarray:
    """Map +inf above every finite score, and -inf and NaN below every one, keeping the order.

    roc_auc_score rejects non-finite input, and dropping those records would bias the AUC.
    """
    finite = scores[np.isfinite(scores)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    return np.where(
        np.isposinf(scores), high + 1.0, np.where(np.isfinite(scores), scores, low - 1.0)
    )


def attack_metrics(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> dict:
    """ROC AUC (with a 95% bootstrap interval) and TPR at 1% and 0.1% FPR."""
    scores = np.concatenate([member_scores, nonmember_scores])
    scores = _finite_ranking(scores)
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
    n_members = len(member_scores)

    def auc_of(member_idx: np.ndarray, nonmember_idx: np.ndarray) -> float:
        return rank_auc(scores[member_idx], scores[n_members + nonmember_idx])

    return {
        "auc": float(roc_auc_score(labels, scores)),
        "auc_ci95": bootstrap_interval(
            auc_of, (n_members, len(nonmember_scores)), resamples=resamples, seed=seed
        ),
        "tpr_at_1pct_fpr": tpr_at_fpr(labels, scores, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(labels, scores, 0.001),
        "members": int(n_members),
        "nonmembers": int(len(nonmember_scores)),
    }


def membership_report(
    finetuned: dict[str, Sequence[TokenScores]],
    base: dict[str, Sequence[TokenScores]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Loss and base-calibrated attacks on all tokens and on sensitive tokens alone."""

    def mean_nll(records: Sequence[TokenScores], sensitive_only: bool) -> np.ndarray:
        values = []
        for record in records:
            nll = record.nll[record.sensitive] if sensitive_only else record.nll
            values.append(nll.mean() if len(nll) else np.nan)
        return np.array(values, dtype=np.float64)

    def members_and_nonmembers(score_of_split: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        # Records without sensitive tokens have no score in the sensitive-only attack: drop them.
        return tuple(v[~np.isnan(v)] for v in (score_of_split["train"], score_of_split["test"]))

    report = {}
    for name, sensitive_only in (("all_tokens", False), ("sensitive_tokens", True)):
        ft = {split: mean_nll(finetuned[split], sensitive_only) for split in ("train", "test")}
        bs = {split: mean_nll(base[split], sensitive_only) for split in ("train", "test")}
        loss = members_and_nonmembers({s: -ft[s] for s in ft})
        calibrated = members_and_nonmembers({s: bs[s] - ft[s] for s in ft})
        report[name] = {
            "loss": attack_metrics(*loss, resamples=resamples, seed=seed),
            "calibrated": attack_metrics(*calibrated, resamples=resamples, seed=seed),
        }
    return report
