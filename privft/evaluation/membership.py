"""Membership inference: can an attacker tell training records from held-out ones?

Members are the training records (canary insertions excluded), non-members the test records.
Every attack gives each record one score, oriented so that higher means "more likely a member":

- ``loss``: minus the record's mean NLL (Yeom et al., "Privacy Risk in Machine Learning:
  Analyzing the Connection to Overfitting", 2018).
- ``zlib``: minus the ratio of the mean NLL (log-perplexity, nats) to the text's zlib-compressed
  size in bits (Carlini et al., "Extracting Training Data from Large Language Models", 2021).
- ``min_k``: the mean of the lowest k% of the record's target log-probabilities (Shi et al.,
  "Detecting Pretraining Data from Large Language Models", 2024).
- ``min_k_plus_plus``: the mean of the lowest k% of standardized log-probabilities
  ``(log p(x_t) - mu_t) / sigma_t``, where mu_t and sigma_t^2 are the mean and variance of
  log p under the model's own next-token distribution at that position (Zhang et al.,
  "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language Models",
  2024).
- ``calibrated``: base-model NLL minus fine-tuned NLL, the reference-model calibration of
  Carlini et al. (2021).

Each attack runs on all target tokens and on sensitive tokens alone. AUC 0.5 is chance; higher
AUC and higher TPR at low FPR mean more risk.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from privft.data.records import Record
from privft.evaluation.scoring import TokenScores
from privft.evaluation.statistics import bootstrap_intervals

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "calibrated")
TOKEN_SETS = {"all_tokens": False, "sensitive_tokens": True}
MIN_K_FRACTION = 0.2
FPR_TARGETS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0_1pct_fpr": 0.001}
# Floor on sigma_t^2 in Min-K%++: a one-hot next-token distribution has variance 0.
MIN_VARIANCE = 1e-12


def tpr_at_fpr_split(members: np.ndarray, nonmembers: np.ndarray, fpr_target: float) -> float:
    """Highest true-positive rate over thresholds whose false-positive rate is <= the target.

    With c = floor(target x non-members) false positives allowed, the best threshold sits just
    above the (c + 1)-th highest non-member score, so the TPR is the share of members above it.
    Equal to the maximum over scikit-learn's full ROC curve (``drop_intermediate=False``).
    """
    allowed = math.floor(fpr_target * len(nonmembers) + 1e-9)
    if allowed >= len(nonmembers):
        return 1.0
    cutoff = np.partition(nonmembers, len(nonmembers) - 1 - allowed)[len(nonmembers) - 1 - allowed]
    return float((members > cutoff).mean())


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Highest true-positive rate over thresholds whose false-positive rate is <= the target."""
    labels = np.asarray(labels).astype(bool)
    return tpr_at_fpr_split(scores[labels], scores[~labels], fpr_target)


def rank_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over both groups' sizes (ties count half).

    Equal to scikit-learn's roc_auc_score.
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


def weighted_auc(
    members: np.ndarray, nonmembers: np.ndarray, member_w: np.ndarray, nonmember_w: np.ndarray
) -> np.ndarray:
    """ROC AUC of each resample, given [resamples, n] draw counts of both groups.

    AUC = sum_i w_i (non-members below m_i + half of those equal) / (sum w x sum v), from the
    cumulative counts of the sorted non-member scores.
    """
    order = np.argsort(nonmembers, kind="stable")
    sorted_scores = nonmembers[order]
    cumulative = np.concatenate(
        [np.zeros((len(nonmember_w), 1)), np.cumsum(nonmember_w[:, order], axis=1)], axis=1
    )
    below = cumulative[:, np.searchsorted(sorted_scores, members, side="left")]
    up_to = cumulative[:, np.searchsorted(sorted_scores, members, side="right")]
    wins = (member_w * (below + 0.5 * (up_to - below))).sum(axis=1)
    return wins / (member_w.sum(axis=1) * nonmember_w.sum(axis=1))


def weighted_tpr_at_fpr(
    members: np.ndarray,
    nonmembers: np.ndarray,
    member_w: np.ndarray,
    nonmember_w: np.ndarray,
    fpr_target: float,
) -> np.ndarray:
    """``tpr_at_fpr_split`` of each resample, given [resamples, n] draw counts of both groups."""
    n0 = nonmember_w.sum(axis=1)
    allowed = np.floor(fpr_target * n0 + 1e-9)
    order = np.argsort(-nonmembers, kind="stable")
    from_top = np.cumsum(nonmember_w[:, order], axis=1)
    # The (allowed + 1)-th highest drawn non-member score is the cutoff.
    position = np.minimum((from_top < (allowed + 1)[:, None]).sum(axis=1), len(order) - 1)
    cutoff = nonmembers[order][position]
    above = (member_w * (members[None, :] > cutoff[:, None])).sum(axis=1)
    tpr = above / member_w.sum(axis=1)
    return np.where(allowed >= n0, 1.0, tpr)


def attack_metrics(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> dict:
    """ROC AUC and TPR at 1% and 0.1% FPR, each with a 95% bootstrap interval.

    Members and non-members are resampled independently, and the three measures share each
    resample.
    """
    scores = _finite_ranking(np.concatenate([member_scores, nonmember_scores]))
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
    n_members = len(member_scores)
    members, nonmembers = scores[:n_members], scores[n_members:]

    def measures(member_w: np.ndarray, nonmember_w: np.ndarray) -> np.ndarray:
        columns = [weighted_auc(members, nonmembers, member_w, nonmember_w)]
        for target in FPR_TARGETS.values():
            columns.append(weighted_tpr_at_fpr(members, nonmembers, member_w, nonmember_w, target))
        return np.stack(columns, axis=1)

    intervals = bootstrap_intervals(
        measures, (n_members, len(nonmember_scores)), resamples=resamples, seed=seed
    )
    result = {"auc": float(roc_auc_score(labels, scores)), "auc_ci95": intervals[0]}
    for (name, target), interval in zip(FPR_TARGETS.items(), intervals[1:], strict=True):
        result[name] = tpr_at_fpr_split(members, nonmembers, target)
        result[f"{name}_ci95"] = interval
    result["members"] = int(n_members)
    result["nonmembers"] = int(len(nonmember_scores))
    return result


def zlib_bits(text: str) -> int:
    """Size of the UTF-8 text after zlib compression (default level), in bits."""
    return 8 * len(zlib.compress(text.encode("utf-8")))


def sensitive_text(record: Record) -> str:
    """Join the record's sensitive spans, one per line, for the sensitive-token zlib attack."""
    return "\n".join(record.text[span.start : span.end] for span in record.spans)


def lowest_fraction_mean(values: np.ndarray, fraction: float) -> float:
    """Mean of the lowest ``max(1, floor(fraction x n))`` of ``values``; NaN when empty."""
    if not len(values):
        return float("nan")
    count = max(1, int(fraction * len(values)))
    return float(np.partition(values, count - 1)[:count].mean())


def record_attack_scores(
    finetuned: TokenScores,
    base: TokenScores | None,
    *,
    sensitive_only: bool,
    zlib_size_bits: float | None = None,
    k: float = MIN_K_FRACTION,
) -> dict[str, float]:
    """Score one record with every attack, on all its target tokens or its sensitive ones.

    Attacks whose inputs are missing (no base scores, no log-probability moments, no zlib size)
    are left out. A record with no selected tokens scores NaN.
    """
    selected = finetuned.sensitive if sensitive_only else np.ones(len(finetuned.nll), dtype=bool)
    nll = finetuned.nll[selected]
    logp = -nll
    mean_nll = float(nll.mean()) if len(nll) else float("nan")
    scores = {"loss": -mean_nll, "min_k": lowest_fraction_mean(logp, k)}
    if zlib_size_bits is not None:
        scores["zlib"] = -mean_nll / zlib_size_bits if zlib_size_bits > 0 else float("nan")
    if finetuned.logp_mean is not None and finetuned.logp_var is not None:
        sigma = np.sqrt(np.maximum(finetuned.logp_var[selected], MIN_VARIANCE))
        standardized = (logp - finetuned.logp_mean[selected]) / sigma
        scores["min_k_plus_plus"] = lowest_fraction_mean(standardized, k)
    if base is not None:
        base_nll = base.nll[selected]
        scores["calibrated"] = float(base_nll.mean()) - mean_nll if len(nll) else float("nan")
    return scores


def membership_report(
    finetuned: dict[str, Sequence[TokenScores]],
    base: dict[str, Sequence[TokenScores]] | None = None,
    *,
    records: dict[str, Sequence[Record]] | None = None,
    k: float = MIN_K_FRACTION,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Run every attack on all tokens and on sensitive tokens alone: AUC and TPR, with intervals.

    ``finetuned`` and ``base`` map split ("train", "test") to the records' token scores, in the
    same order as ``records`` (needed by the zlib attack only). Records without sensitive tokens
    have no score in the sensitive-only attacks and are left out of them.
    """
    if not 0 < k <= 1:
        raise ValueError(f"min-k fraction must be in (0, 1], got {k!r}")
    report: dict = {"min_k_fraction": k}
    for token_set, sensitive_only in TOKEN_SETS.items():
        per_split: dict[str, dict[str, np.ndarray]] = {}
        for split in ("train", "test"):
            rows, scorable = [], []
            for index, scores in enumerate(finetuned[split]):
                size = None
                if records is not None:
                    record = records[split][index]
                    size = zlib_bits(sensitive_text(record) if sensitive_only else record.text)
                rows.append(
                    record_attack_scores(
                        scores,
                        base[split][index] if base is not None else None,
                        sensitive_only=sensitive_only,
                        zlib_size_bits=size,
                        k=k,
                    )
                )
                scorable.append(bool(scores.sensitive.any()) if sensitive_only else True)
            # A record with no sensitive tokens has no score in the sensitive-only attacks.
            keep = np.array(scorable, dtype=bool)
            names = rows[0].keys() if rows else ()
            per_split[split] = {
                name: np.array([row[name] for row in rows], dtype=np.float64)[keep]
                for name in names
            }
        report[token_set] = {}
        for attack in ATTACKS:
            members = per_split["train"].get(attack)
            nonmembers = per_split["test"].get(attack)
            if members is None or nonmembers is None or not len(members) or not len(nonmembers):
                continue
            report[token_set][attack] = attack_metrics(
                members, nonmembers, resamples=resamples, seed=seed
            )
    return report
