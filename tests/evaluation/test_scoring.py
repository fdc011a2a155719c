import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.records import Record, Span
from privft.evaluation.scoring import score_records, target_statistics
from privft.models import load_model


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    folder = tiny_model_dir("gpt2")
    return load_model(str(folder)), AutoTokenizer.from_pretrained(folder)


def test_scores_match_model_loss(setup):
    model, tokenizer = setup
    records = [
        Record("a", "My name is Dana Whitfield.", [Span(11, 25, "PERSON")]),
        Record("b", "Thank you for contacting support; your card was updated."),
    ]
    encoded = encode_records(records, tokenizer, max_length=64)
    scored = score_records(model, encoded, pad_token_id=tokenizer.pad_token_id, batch_size=2)
    for item, result in zip(encoded, scored, strict=True):
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        assert len(result.nll) == len(item.input_ids) - 1
        assert result.nll.mean() == pytest.approx(float(loss), abs=1e-5)


def test_target_labels_shift_by_one(setup):
    model, tokenizer = setup
    record = Record("a", "My name is Dana Whitfield.", [Span(11, 25, "PERSON")])
    encoded = encode_records([record], tokenizer, max_length=64)[0]
    scored = score_records(model, [encoded], pad_token_id=tokenizer.pad_token_id)[0]
    assert scored.labels == encoded.labels[1:]
    assert np.array_equal(scored.sensitive, np.array(encoded.sensitive[1:]))


def test_padding_does_not_change_scores(setup):
    model, tokenizer = setup
    short = Record("s", "Hi Dana.")
    long = Record("l", "Thank you for contacting support; your card was updated today.")
    alone = score_records(
        model,
        encode_records([short], tokenizer, max_length=64),
        pad_token_id=tokenizer.pad_token_id,
    )[0]
    batched = score_records(
        model,
        encode_records([short, long], tokenizer, max_length=64),
        pad_token_id=tokenizer.pad_token_id,
    )[0]
    np.testing.assert_allclose(alone.nll, batched.nll, atol=1e-5)


def brute_force(model, ids: list[int]) -> dict[str, np.ndarray]:
    """Float64 log-softmax of every position, reduced the textbook way."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    mean = (p * logp).sum(-1)
    return {
        "logp": logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy(),
        "mean": mean.numpy(),
        "var": (p * (logp - mean[:, None]) ** 2).sum(-1).numpy(),
        "argmax": logp.argmax(-1).numpy(),
    }


@pytest.fixture(scope="module")
def scored(setup):
    model, tokenizer = setup
    records = [
        Record("a", "My name is Dana Whitfield.", [Span(11, 25, "PERSON")]),
        Record("b", "Thank you for contacting support; your card ending 4821 was updated."),
    ]
    encoded = encode_records(records, tokenizer, max_length=64)
    results = score_records(model, encoded, pad_token_id=tokenizer.pad_token_id)
    return [
        (item, result, brute_force(model, item.input_ids))
        for item, result in zip(encoded, results, strict=True)
    ]


def test_nll_matches_brute_force(scored):
    for _, result, brute in scored:
        np.testing.assert_allclose(result.nll, -brute["logp"], rtol=1e-5, atol=1e-5)


def test_logp_mean_matches_brute_force(scored):
    for _, result, brute in scored:
        np.testing.assert_allclose(result.logp_mean, brute["mean"], rtol=1e-5, atol=1e-5)


def test_logp_var_matches_brute_force(scored):
    for _, result, brute in scored:
        np.testing.assert_allclose(result.logp_var, brute["var"], rtol=1e-4, atol=1e-5)


def test_correct_matches_argmax(scored):
    for item, result, brute in scored:
        assert np.array_equal(result.correct, brute["argmax"] == np.array(item.input_ids[1:]))


def test_moments_on_peaked_distribution():
    # Two-way distribution p = (0.75, 0.25) plus a vocabulary entry of probability ~0.
    logits = torch.tensor([[math.log(3.0), 0.0, -1e4]])
    stats = target_statistics(logits, torch.tensor([1]))
    mean = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    var = 0.75 * math.log(0.75) ** 2 + 0.25 * math.log(0.25) ** 2 - mean**2
    assert float(stats["logp"][0]) == pytest.approx(math.log(0.25), abs=1e-6)
    assert float(stats["logp_mean"][0]) == pytest.approx(mean, abs=1e-6)
    assert float(stats["logp_var"][0]) == pytest.approx(var, abs=1e-6)
    assert not bool(stats["correct"][0])


def test_no_distribution_skips_moments(setup):
    model, tokenizer = setup
    encoded = encode_records([Record("s", "Hi Dana.")], tokenizer, max_length=64)
    result = score_records(model, encoded, pad_token_id=tokenizer.pad_token_id, distribution=False)[
        0
    ]
    assert result.logp_mean is None
    assert result.logp_var is None


def test_padding_does_not_change_moments(setup):
    model, tokenizer = setup
    short = Record("s", "Hi Dana.")
    long = Record("l", "Thank you for contacting support; your card was updated today.")
    pad = tokenizer.pad_token_id
    alone = score_records(
        model, encode_records([short], tokenizer, max_length=64), pad_token_id=pad
    )
    batched = score_records(
        model, encode_records([short, long], tokenizer, max_length=64), pad_token_id=pad
    )
    np.testing.assert_allclose(alone[0].logp_var, batched[0].logp_var, atol=1e-5)
