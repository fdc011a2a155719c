import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privft.evaluation.membership import attack_metrics, rank_auc, tpr_at_fpr


def test_auc_matches_sklearn():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(0.5, 1, 200), rng.normal(0, 1, 300)
    labels = np.r_[np.ones(200), np.zeros(300)]
    expected = roc_auc_score(labels, np.r_[members, nonmembers])
    assert attack_metrics(members, nonmembers, resamples=50)["auc"] == pytest.approx(expected)


def test_perfect_separation_gives_auc_one():
    result = attack_metrics(np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0]), resamples=20)
    assert result["auc"] == 1.0
    assert result["tpr_at_1pct_fpr"] == 1.0


def test_reversed_scores_give_auc_zero():
    result = attack_metrics(np.array([1.0, 2.0]), np.array([5.0, 6.0]), resamples=20)
    assert result["auc"] == 0.0


def test_tpr_at_fpr_hand_case():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.1, 0.85, 0.2, 0.15, 0.05])
    # Thresholds with no false positive admit only 0.9: TPR 1/4.
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.25)
    # One false positive of four (FPR 0.25, the 0.85) lets the threshold fall to 0.3:
    # members 0.9, 0.8 and 0.3 pass, TPR 3/4.
    assert tpr_at_fpr(labels, scores, 0.25) == pytest.approx(0.75)


def test_nonfinite_scores_keep_order():
    members = np.array([3.0, np.nan, np.inf])
    nonmembers = np.array([1.0, 2.0, -np.inf])
    result = attack_metrics(members, nonmembers, resamples=20)
    # 3 and +inf beat all three non-members (6 pairs); NaN ranks at the bottom, where it loses
    # to 1 and 2 and ties with -inf (half a pair): 6.5 of 9 pairs.
    assert result["auc"] == pytest.approx(6.5 / 9)


def test_rank_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    members = rng.integers(0, 5, 50).astype(float)
    nonmembers = rng.integers(0, 4, 70).astype(float)
    labels = np.r_[np.ones(50), np.zeros(70)]
    expected = roc_auc_score(labels, np.r_[members, nonmembers])
    assert rank_auc(members, nonmembers) == pytest.approx(expected)
