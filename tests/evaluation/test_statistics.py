import numpy as np
import pytest

from privft.evaluation.statistics import bootstrap_intervals, resample_weights, weighted_mean


def test_weights_count_draws():
    weights = resample_weights(np.random.default_rng(0), 7, 50)
    assert weights.shape == (50, 7)
    assert np.all(weights.sum(axis=1) == 7)


def test_weights_uniform_on_average():
    weights = resample_weights(np.random.default_rng(1), 4, 20000)
    np.testing.assert_allclose(weights.mean(axis=0), 1.0, atol=0.03)


def test_weighted_mean_hand_case():
    weights = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    totals, counts = np.array([3.0, 10.0]), np.array([1.0, 4.0])
    # (3 + 10) / 5, 6 / 2, 20 / 8.
    np.testing.assert_allclose(weighted_mean(weights, totals, counts), [2.6, 3.0, 2.5])


def test_weighted_mean_empty_is_nan():
    result = weighted_mean(np.array([[1.0, 0.0]]), np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    assert np.isnan(result[0])


def test_interval_of_mean_matches_normal_theory():
    values = np.random.default_rng(2).normal(0.0, 1.0, 400)

    def mean(weights):
        return (weights @ values / weights.sum(axis=1))[:, None]

    low, high = bootstrap_intervals(mean, [400], resamples=2000)[0]
    # Standard error 1 / sqrt(400) = 0.05, so the interval is about +-1.96 x 0.05 wide.
    assert high - low == pytest.approx(2 * 1.96 * values.std() / 20, rel=0.1)


def test_small_group_has_no_interval():
    assert bootstrap_intervals(lambda w: w.sum(axis=1)[:, None], [1]) == [None]
