import itertools

import numpy as np
import pytest

from privft.evaluation.memorization import memorization_report
from privft.evaluation.scoring import TokenScores

P, E = "PERSON", "EMAIL"


def scores(nlls, labels):
    return TokenScores("r", np.array(nlls, dtype=float), np.array([n < 1 for n in nlls]), labels)


def hand_case():
    return {
        ("finetuned", "train"): [scores([0.5, 1.0], [P, None]), scores([0.5, 3.0], [P, None])],
        ("finetuned", "test"): [scores([2.0, 1.0], [P, None]), scores([4.0, 3.0], [P, None])],
        ("base", "train"): [scores([3.0, 2.0], [P, None]), scores([3.0, 2.0], [P, None])],
        ("base", "test"): [scores([3.5, 2.0], [P, None]), scores([3.5, 2.0], [P, None])],
    }


def two_kinds():
    """Two records per split; PERSON and EMAIL tokens, one plain token each."""
    labels = [P, E, E, None]
    return {
        ("finetuned", "train"): [
            scores([0.2, 0.4, 0.6, 1.0], labels),
            scores([0.4, 1.0, 1.0, 2.0], labels),
        ],
        ("finetuned", "test"): [
            scores([2.0, 3.0, 3.0, 1.0], labels),
            scores([4.0, 2.0, 2.0, 2.0], labels),
        ],
        ("base", "train"): [
            scores([3.0, 4.0, 4.0, 1.5], labels),
            scores([3.0, 4.0, 4.0, 2.5], labels),
        ],
        ("base", "test"): [
            scores([3.0, 4.0, 4.0, 1.5], labels),
            scores([3.0, 5.0, 5.0, 2.5], labels),
        ],
    }


@pytest.fixture(scope="module")
def report():
    return memorization_report(hand_case(), resamples=400)


@pytest.fixture(scope="module")
def kinds_report():
    return memorization_report(two_kinds(), resamples=1000)


def test_sensitive_gap_hand_computed(report):
    # Fine-tuned: test 3.0 - train 0.5 = 2.5; base: 3.5 - 3.0 = 0.5; gap 2.0.
    assert report["sensitive_gap"] == pytest.approx(2.0)


def test_nonsensitive_gap_hand_computed(report):
    # Fine-tuned: 2.0 - 2.0 = 0; base: 2.0 - 2.0 = 0.
    assert report["nonsensitive_gap"] == pytest.approx(0.0)


def test_sensitive_gain_hand_computed(report):
    assert report["sensitive_gain"] == pytest.approx(3.0 - 0.5)


def test_class_tables_and_accuracy(report):
    train_sensitive = report["finetuned"]["train"]["sensitive"]
    assert train_sensitive["nll_nats"] == pytest.approx(0.5)
    assert train_sensitive["accuracy"] == pytest.approx(1.0)
    assert train_sensitive["tokens"] == 2
    assert train_sensitive["records"] == 2


def test_nonsensitive_table(report):
    test_plain = report["finetuned"]["test"]["nonsensitive"]
    # NLLs 1.0 and 3.0; correct means NLL < 1, which neither is.
    assert test_plain["nll_nats"] == pytest.approx(2.0)
    assert test_plain["accuracy"] == pytest.approx(0.0)
    assert test_plain["tokens"] == 2


def test_base_table(report):
    assert report["base"]["test"]["sensitive"]["nll_nats"] == pytest.approx(3.5)
    assert report["base"]["train"]["nonsensitive"]["nll_nats"] == pytest.approx(2.0)


def test_by_kind_gap(report):
    assert report["by_kind"]["PERSON"]["gap"] == pytest.approx(2.0)


def test_kind_nll_per_model(kinds_report):
    email = kinds_report["by_kind"]["EMAIL"]
    # Token-weighted: train EMAIL tokens 0.4, 0.6, 1.0, 1.0 -> 0.75.
    assert email["finetuned_train_nll_nats"] == pytest.approx(0.75)
    assert email["finetuned_test_nll_nats"] == pytest.approx(2.5)
    assert email["base_train_nll_nats"] == pytest.approx(4.0)
    assert email["base_test_nll_nats"] == pytest.approx(4.5)


def test_kind_gap_and_gains(kinds_report):
    email = kinds_report["by_kind"]["EMAIL"]
    # Gap (2.5 - 0.75) - (4.5 - 4.0) = 1.25; gains 4.0 - 0.75 and 4.5 - 2.5.
    assert email["gap"] == pytest.approx(1.25)
    assert email["train_gain"] == pytest.approx(3.25)
    assert email["test_gain"] == pytest.approx(2.0)


def test_person_gap(kinds_report):
    person = kinds_report["by_kind"]["PERSON"]
    # Fine-tuned: 3.0 - 0.3 = 2.7; base: 3.0 - 3.0 = 0.
    assert person["gap"] == pytest.approx(2.7)


def test_kind_token_counts(kinds_report):
    assert kinds_report["by_kind"]["EMAIL"]["tokens"] == {"train": 4, "test": 4}


def test_sensitive_classes_pool_kinds(kinds_report):
    # Sensitive train NLL pools PERSON and EMAIL: (0.2 + 0.4 + 0.6 + 0.4 + 1.0 + 1.0) / 6.
    train = kinds_report["finetuned"]["train"]["sensitive"]["nll_nats"]
    assert train == pytest.approx(3.6 / 6)


def enumerated_range(case, kind) -> tuple[float, float]:
    """Min and max of the gap over all 16 equally likely resamples of two records per split."""

    def record(model, split, i):
        return case[model, split][i]

    def mean(model, split, picks):
        values = [
            n
            for i in picks
            for n, label in zip(
                record(model, split, i).nll, record(model, split, i).labels, strict=True
            )
            if (label == kind if kind else label is not None)
        ]
        return sum(values) / len(values)

    gaps = []
    pairs = list(itertools.product(range(2), repeat=2))
    for train, test in itertools.product(pairs, pairs):
        ft = mean("finetuned", "test", test) - mean("finetuned", "train", train)
        base = mean("base", "test", test) - mean("base", "train", train)
        gaps.append(ft - base)
    return min(gaps), max(gaps)


def test_gap_interval_enumerated(kinds_report):
    # Every resample has probability 1/16 > 2.5%, so the percentile ends are the extremes.
    low, high = enumerated_range(two_kinds(), None)
    assert kinds_report["sensitive_gap_ci95"] == pytest.approx([low, high])


def test_kind_interval_enumerated(kinds_report):
    low, high = enumerated_range(two_kinds(), "PERSON")
    assert kinds_report["by_kind"]["PERSON"]["gap_ci95"] == pytest.approx([low, high])


def test_constant_records_give_point_interval():
    case = {
        key: [scores([1.0, 2.0], [P, None]) for _ in range(3)]
        for key in itertools.product(("finetuned", "base"), ("train", "test"))
    }
    report = memorization_report(case, resamples=50)
    assert report["sensitive_gain_ci95"] == pytest.approx([0.0, 0.0])


def test_bootstrap_interval_contains_estimate(report):
    low, high = report["sensitive_gap_ci95"]
    assert low <= report["sensitive_gap"] <= high


def test_single_record_has_no_interval():
    case = {key: value[:1] for key, value in hand_case().items()}
    report = memorization_report(case, resamples=50)
    assert report["sensitive_gap_ci95"] is None
