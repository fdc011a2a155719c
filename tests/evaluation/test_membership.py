import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.records import Record, Span
from privft.evaluation.membership import (
    ATTACKS,
    attack_metrics,
    lowest_fraction_mean,
    membership_report,
    rank_auc,
    record_attack_scores,
    tpr_at_fpr,
    tpr_at_fpr_split,
    weighted_auc,
    weighted_tpr_at_fpr,
    zlib_bits,
)
from privft.evaluation.scoring import TokenScores, score_records
from privft.evaluation.statistics import resample_weights
from privft.models import load_model


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


def sklearn_tpr(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= target].max())


@pytest.mark.parametrize("target", [0.0, 0.001, 0.01, 0.05, 0.3])
def test_tpr_matches_full_roc(target):
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 40, 700).astype(float)
    labels = (rng.random(700) < 0.4).astype(int)
    assert tpr_at_fpr(labels, scores, target) == pytest.approx(sklearn_tpr(labels, scores, target))


def test_tpr_on_tied_diagonal():
    # Three tie groups, each one member and one non-member: at FPR 1/3 the best threshold
    # admits the top group, TPR 1/3 (a ROC curve with collinear points dropped misses it).
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([3.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    assert tpr_at_fpr(labels, scores, 1 / 3) == pytest.approx(1 / 3)


def test_auc_orientation_members_higher():
    members, nonmembers = np.array([0.9, 0.7, 0.6]), np.array([0.8, 0.2, 0.1, 0.3])
    labels = np.r_[np.ones(3), np.zeros(4)]
    result = attack_metrics(members, nonmembers, resamples=20)
    # Pairs won by members: 0.9 beats 4, 0.7 beats 3, 0.6 beats 3: 10 of 12.
    assert result["auc"] == pytest.approx(10 / 12)
    assert result["auc"] == pytest.approx(roc_auc_score(labels, np.r_[members, nonmembers]))


def test_tpr_intervals_on_separable_data():
    result = attack_metrics(np.arange(10.0, 20.0), np.arange(10.0), resamples=50)
    assert result["tpr_at_1pct_fpr"] == 1.0
    assert result["tpr_at_1pct_fpr_ci95"] == [1.0, 1.0]
    assert result["tpr_at_0_1pct_fpr_ci95"] == [1.0, 1.0]


def test_interval_brackets_auc():
    rng = np.random.default_rng(4)
    result = attack_metrics(rng.normal(0.3, 1, 80), rng.normal(0, 1, 90), resamples=200)
    low, high = result["auc_ci95"]
    assert low <= result["auc"] <= high


def test_lowest_fraction_hand_case():
    values = np.array([-5.0, -1.0, -3.0, -2.0, -4.0])
    # floor(0.4 * 5) = 2 lowest: -5 and -4.
    assert lowest_fraction_mean(values, 0.4) == pytest.approx(-4.5)
    # floor(0.1 * 5) = 0 is raised to one value.
    assert lowest_fraction_mean(values, 0.1) == pytest.approx(-5.0)


def token_scores(nll, labels, mean=None, var=None) -> TokenScores:
    nll = np.array(nll, dtype=float)
    return TokenScores(
        "r",
        nll,
        np.zeros(len(nll), dtype=bool),
        labels,
        None if mean is None else np.array(mean, dtype=float),
        None if var is None else np.array(var, dtype=float),
    )


def test_record_scores_hand_case():
    p = "PERSON"
    finetuned = token_scores(
        [1.0, 2.0, 3.0, 6.0, 0.5], [None, p, p, None, None], [-2.0] * 5, [4.0] * 5
    )
    base = token_scores([2.0, 3.0, 3.0, 7.0, 1.0], [None, p, p, None, None])
    scores = record_attack_scores(finetuned, base, sensitive_only=False, zlib_size_bits=100.0)
    assert scores["loss"] == pytest.approx(-2.5)
    assert scores["zlib"] == pytest.approx(-2.5 / 100)
    # Lowest floor(0.2 * 5) = 1 log-prob: -6.
    assert scores["min_k"] == pytest.approx(-6.0)
    # Standardized: (-6 - (-2)) / 2 = -2 is the lowest.
    assert scores["min_k_plus_plus"] == pytest.approx(-2.0)
    assert scores["calibrated"] == pytest.approx(3.2 - 2.5)


def test_record_scores_sensitive_only():
    p = "PERSON"
    finetuned = token_scores(
        [1.0, 2.0, 3.0, 6.0, 0.5], [None, p, p, None, None], [-2.0] * 5, [4.0] * 5
    )
    base = token_scores([2.0, 3.0, 3.0, 7.0, 1.0], [None, p, p, None, None])
    scores = record_attack_scores(finetuned, base, sensitive_only=True)
    assert scores["loss"] == pytest.approx(-2.5)
    assert scores["min_k"] == pytest.approx(-3.0)
    assert scores["min_k_plus_plus"] == pytest.approx(-0.5)
    assert scores["calibrated"] == pytest.approx(0.5)
    assert "zlib" not in scores


def test_zlib_bits_matches_zlib():
    text = "Customer: Dana Whitfield asked about the order."
    assert zlib_bits(text) == 8 * len(zlib.compress(text.encode("utf-8")))


def report_case():
    p = "PERSON"
    train = [token_scores([0.5, 1.0 + i / 10], [p, None], [-1.0] * 2, [1.0] * 2) for i in range(4)]
    train.append(token_scores([0.7], [None], [-1.0], [1.0]))
    test = [token_scores([2.0, 1.0 + i / 10], [p, None], [-1.0] * 2, [1.0] * 2) for i in range(4)]
    base = {
        "train": [token_scores([2.0] * len(s.nll), s.labels) for s in train],
        "test": [token_scores([2.0] * len(s.nll), s.labels) for s in test],
    }
    records = {
        "train": [Record(f"tr{i}", "Hi Dana.", [Span(3, 7, p)]) for i in range(5)],
        "test": [Record(f"te{i}", "Hi Omar.", [Span(3, 7, p)]) for i in range(4)],
    }
    return {"train": train, "test": test}, base, records


def test_report_has_every_attack():
    finetuned, base, records = report_case()
    report = membership_report(finetuned, base, records=records, resamples=20)
    assert sorted(report["all_tokens"]) == sorted(ATTACKS)
    assert sorted(report["sensitive_tokens"]) == sorted(ATTACKS)


def test_report_sensitive_drops_unlabelled():
    finetuned, base, records = report_case()
    report = membership_report(finetuned, base, records=records, resamples=20)
    assert report["all_tokens"]["loss"]["members"] == 5
    assert report["sensitive_tokens"]["loss"]["members"] == 4


def test_report_sensitive_loss_separates():
    finetuned, base, records = report_case()
    report = membership_report(finetuned, base, records=records, resamples=20)
    # Sensitive NLL 0.5 for every member, 2.0 for every non-member.
    assert report["sensitive_tokens"]["loss"]["auc"] == 1.0


def test_invalid_k_rejected():
    finetuned, base, records = report_case()
    with pytest.raises(ValueError, match=r"min-k fraction must be in \(0, 1\], got 0"):
        membership_report(finetuned, base, records=records, k=0)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    folder = tiny_model_dir("llama")
    return load_model(str(folder)), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("k", [0.2, 0.5])
def test_min_k_uses_target_logprobs(tiny, k):
    model, tokenizer = tiny
    records = [
        Record("a", "My name is Dana Whitfield and my phone number is 555 0134.", []),
        Record("b", "Hi.", []),
    ]
    encoded = encode_records(records, tokenizer, max_length=64)
    scored = score_records(model, encoded, pad_token_id=tokenizer.pad_token_id)
    for item, result in zip(encoded, scored, strict=True):
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        # Targets are tokens 1..T-1, each scored by the logit one position to its left.
        targets = logp[torch.arange(len(item.input_ids) - 1), ids[0, 1:]].numpy()
        count = max(1, int(k * len(targets)))
        expected = np.sort(targets)[:count].mean()
        got = record_attack_scores(result, None, sensitive_only=False, k=k)["min_k"]
        assert got == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def resampled():
    rng = np.random.default_rng(5)
    members = rng.integers(0, 30, 60).astype(float)
    nonmembers = rng.integers(0, 25, 250).astype(float)
    member_w = resample_weights(rng, len(members), 40)
    nonmember_w = resample_weights(rng, len(nonmembers), 40)
    return members, nonmembers, member_w, nonmember_w


def expand(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.repeat(values, weights.astype(int))


def test_weighted_auc_matches_expanded(resampled):
    members, nonmembers, member_w, nonmember_w = resampled
    got = weighted_auc(members, nonmembers, member_w, nonmember_w)
    for b in range(len(member_w)):
        m, n = expand(members, member_w[b]), expand(nonmembers, nonmember_w[b])
        assert got[b] == pytest.approx(rank_auc(m, n))


@pytest.mark.parametrize("target", [0.001, 0.01, 0.1])
def test_weighted_tpr_matches_expanded(resampled, target):
    members, nonmembers, member_w, nonmember_w = resampled
    got = weighted_tpr_at_fpr(members, nonmembers, member_w, nonmember_w, target)
    for b in range(len(member_w)):
        m, n = expand(members, member_w[b]), expand(nonmembers, nonmember_w[b])
        assert got[b] == pytest.approx(tpr_at_fpr_split(m, n, target))
