import math

import numpy as np
import pytest
import torch
from scipy.stats import skewnorm
from transformers import AutoTokenizer

from privft.data.encoding import start_token_id
from privft.data.records import Canary
from privft.evaluation.exposure import (
    digit_tokens,
    enumerate_log_perplexity,
    exposure_from_rank,
    exposure_report,
    interpolated_rank,
    rank_of,
    sampled_log_perplexity,
    secret_index,
    skewnorm_rank,
)
from privft.models import load_model

PREFIX = "Note: the verification code is "


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    folder = tiny_model_dir("gpt_neox")
    return load_model(str(folder)), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_enumeration_matches_teacher_forcing(model_and_tokenizer, length):
    model, tokenizer = model_and_tokenizer
    canary = Canary("c", PREFIX, "7" * length, ".", 1)
    char_ids = digit_tokens(tokenizer, [canary])
    assert char_ids is not None
    prefix_ids = [start_token_id(tokenizer), *tokenizer.encode(PREFIX, add_special_tokens=False)]
    fast = enumerate_log_perplexity(model, prefix_ids, char_ids, length)
    secrets = [str(i).zfill(length) for i in range(10**length)]
    brute = sampled_log_perplexity(model, tokenizer, PREFIX, secrets)
    np.testing.assert_allclose(fast, brute, rtol=1e-4, atol=1e-4)


def test_rank_matches_sorted_position():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=500)
    order = np.argsort(scores)
    for position in (0, 10, 499):
        target = int(order[position])
        rank, size = rank_of(scores, target)
        assert rank == position + 1
        assert size == 500


def test_rank_excludes_other_canaries():
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    rank, size = rank_of(scores, target=2, excluded=[0])
    assert rank == 2
    assert size == 3


def test_rank_counts_ties_half():
    scores = np.array([1.0, 1.0, 1.0, 2.0])
    rank, _ = rank_of(scores, target=0)
    assert rank == 2.0


def test_exposure_formula():
    assert exposure_from_rank(1, 2**20) == pytest.approx(20.0)
    assert exposure_from_rank(2**20, 2**20) == pytest.approx(0.0)


def test_secret_index_is_base_alphabet_value():
    assert secret_index("000123", "0123456789") == 123
    assert secret_index("ba", "ab") == 2


def test_exact_report_ranks_brute_force(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    canaries = [Canary("in", PREFIX, "482", ".", 4), Canary("ref", PREFIX, "105", ".", 0)]
    report = exposure_report(model, tokenizer, canaries)
    secrets = [str(i).zfill(3) for i in range(1000)]
    brute = sampled_log_perplexity(model, tokenizer, PREFIX, secrets)
    inserted = brute[482]
    expected_rank = 1 + (brute < inserted).sum() + 0.5 * ((brute == inserted).sum() - 1)
    first = report["canaries"][0]
    assert first["method"] == "exact"
    assert first["rank"] == pytest.approx(expected_rank)
    assert first["exposure"] == pytest.approx(math.log2(1000) - math.log2(expected_rank))
    # The reference canary is ranked without the inserted secret among its candidates.
    assert report["canaries"][1]["space_size"] == 999


def test_memorized_secret_has_high_exposure(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model = type(model)(model.config)
    canary = Canary("in", PREFIX, "48", ".", 4)
    ids = torch.tensor([tokenizer.encode(PREFIX + "48", add_special_tokens=False)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    report = exposure_report(model, tokenizer, [canary])
    assert report["canaries"][0]["rank"] == 1
    assert report["canaries"][0]["exposure"] == pytest.approx(math.log2(100))


def test_sampled_estimate_close_to_exact(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    canaries = [Canary("in", PREFIX, "4821", ".", 4)]
    exact = exposure_report(model, tokenizer, canaries, method="exact")["canaries"][0]
    sampled = exposure_report(model, tokenizer, canaries, method="sampled", samples=4000)[
        "canaries"
    ][0]
    assert sampled["method"] == "sampled"
    # Sampling 4000 of 10^4 candidates estimates the rank's share within a few points.
    assert abs(sampled["rank"] - exact["rank"]) / 10**4 < 0.05


def test_unknown_exposure_method_rejected(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="valid: auto, exact, sampled, skewnorm"):
        exposure_report(model, tokenizer, [Canary("c", PREFIX, "12", ".", 1)], method="x")


def test_skewnorm_rank_on_known_distribution():
    sample = skewnorm.rvs(4.0, loc=20.0, scale=2.0, size=5000, random_state=1)
    space = 10**6
    for value in (19.5, 20.5, 22.0):
        truth = math.log2(1 / skewnorm.cdf(value, 4.0, loc=20.0, scale=2.0))
        estimate = exposure_from_rank(skewnorm_rank(sample, value, space), space)
        assert abs(estimate - truth) < 0.3


def test_skewnorm_rank_is_clipped():
    sample = np.random.default_rng(0).normal(20.0, 1.0, 1000)
    assert skewnorm_rank(sample, -1e3, 10**6) == 1.0
    assert skewnorm_rank(sample, 1e3, 10**6) == 10**6


def test_interpolated_rank_hand_case():
    sample = np.array([1.0, 2.0, 2.0, 3.0])
    # One candidate below 2.0 and two tied (half each): share 2/4, rank 1 + 0.5 x 99.
    assert interpolated_rank(sample, 2.0, 100) == pytest.approx(50.5)


@pytest.fixture(scope="module")
def four_digit_scores(model_and_tokenizer):
    """Exact log-perplexities of the whole 4-digit space, by enumeration."""
    model, tokenizer = model_and_tokenizer
    char_ids = digit_tokens(tokenizer, [Canary("c", PREFIX, "0000", ".", 1)])
    prefix_ids = [start_token_id(tokenizer), *tokenizer.encode(PREFIX, add_special_tokens=False)]
    return enumerate_log_perplexity(model, prefix_ids, char_ids, 4)


@pytest.mark.parametrize(("position", "tolerance"), [(10, 1.0), (100, 0.5), (5000, 0.2)])
def test_skewnorm_close_to_brute_force(four_digit_scores, position, tolerance):
    scores = four_digit_scores
    target = int(np.argsort(scores)[position])
    exact = exposure_from_rank(*rank_of(scores, target))
    sample = scores[np.random.default_rng(0).integers(0, len(scores), 2000)]
    estimate = exposure_from_rank(skewnorm_rank(sample, scores[target], len(scores)), len(scores))
    assert abs(estimate - exact) < tolerance


def test_skewnorm_report_matches_exact(model_and_tokenizer, four_digit_scores):
    model, tokenizer = model_and_tokenizer
    secret = str(int(np.argsort(four_digit_scores)[100])).zfill(4)
    canaries = [Canary("in", PREFIX, secret, ".", 4)]
    exact = exposure_report(model, tokenizer, canaries, method="exact")["canaries"][0]
    report = exposure_report(model, tokenizer, canaries, method="skewnorm", samples=2000)
    estimate = report["canaries"][0]
    assert estimate["method"] == "skewnorm"
    assert estimate["samples"] == 2000
    assert estimate["log_perplexity"] == pytest.approx(exact["log_perplexity"], abs=1e-4)
    assert abs(estimate["exposure"] - exact["exposure"]) < 0.5


def test_reference_is_control(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    canaries = [
        Canary("in", PREFIX, "48", ".", 4),
        Canary("in2", PREFIX, "17", ".", 4),
        Canary("ref", PREFIX, "10", ".", 0),
    ]
    report = exposure_report(model, tokenizer, canaries)
    by_id = {c["id"]: c["exposure"] for c in report["canaries"]}
    mean_inserted = (by_id["in"] + by_id["in2"]) / 2
    assert report["mean_by_repetitions"]["4"] == pytest.approx(mean_inserted)
    assert report["mean_by_repetitions"]["0"] == pytest.approx(by_id["ref"])
    assert report["excess_over_reference"]["4"] == pytest.approx(mean_inserted - by_id["ref"])
    assert report["count_by_repetitions"] == {"0": 1, "4": 2}
