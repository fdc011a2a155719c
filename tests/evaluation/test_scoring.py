import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.records import Record, Span
from privft.evaluation.scoring import score_records
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
