import numpy as np
import pytest

from privft.evaluation.memorization import memorization_report
from privft.evaluation.scoring import TokenScores


def scores(nlls, labels):
    return TokenScores("r", np.array(nlls, dtype=float), np.array([n < 1 for n in nlls]), labels)


def hand_case():
    p = "PERSON"
    return {
        ("finetuned", "train"): [scores([0.5, 1.0], [p, None]), scores([0.5, 3.0], [p, None])],
        ("finetuned", "test"): [scores([2.0, 1.0], [p, None]), scores([4.0, 3.0], [p, None])],
        ("base", "train"): [scores([3.0, 2.0], [p, None]), scores([3.0, 2.0], [p, None])],
        ("base", "test"): [scores([3.5, 2.0], [p, None]), scores([3.5, 2.0], [p, None])],
    }


def test_sensitive_gap_hand_computed():
    report = memorization_report(hand_case(), resamples=50)
    # Fine-tuned: test 3.0 - train 0.5 = 2.5; base: 3.5 - 3.0 = 0.5; gap 2.0.
    assert report["sensitive_gap"] == pytest.approx(2.0)


def test_nonsensitive_gap_hand_computed():
    report = memorization_report(hand_case(), resamples=50)
    # Fine-tuned: 2.0 - 2.0 = 0; base: 2.0 - 2.0 = 0.
    assert report["nonsensitive_gap"] == pytest.approx(0.0)


def test_sensitive_gain_hand_computed():
    report = memorization_report(hand_case(), resamples=50)
    assert report["sensitive_gain"] == pytest.approx(3.0 - 0.5)


def test_class_tables_and_accuracy():
    report = memorization_report(hand_case(), resamples=50)
    train_sensitive = report["finetuned"]["train"]["sensitive"]
    assert train_sensitive["nll_nats"] == pytest.approx(0.5)
    assert train_sensitive["accuracy"] == pytest.approx(1.0)
    assert train_sensitive["tokens"] == 2


def test_by_kind_gap():
    report = memorization_report(hand_case(), resamples=50)
    assert report["by_kind"]["PERSON"]["gap"] == pytest.approx(2.0)


def test_bootstrap_interval_contains_estimate():
    report = memorization_report(hand_case(), resamples=200)
    low, high = report["sensitive_gap_ci95"]
    assert low <= report["sensitive_gap"] <= high
