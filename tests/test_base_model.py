"""Checks on the shipped base model folder: it loads offline and keeps the tokenizer contract."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

# The folder loads by local path, and offline mode makes any stray hub lookup fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BASE_MODEL_DIR = Path(__file__).resolve().parent.parent / "privft" / "assets" / "base_model"
MAX_WEIGHTS_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(BASE_MODEL_DIR, local_files_only=True)


@pytest.fixture(scope="module")
def model():
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        BASE_MODEL_DIR, local_files_only=True
    )
    loaded.eval()
    return loaded


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    encoding = tokenizer(text, return_offsets_mapping=True)
    return encoding["input_ids"], [tuple(pair) for pair in encoding["offset_mapping"]]


def test_folder_contains_only_model_files():
    names = {path.name for path in BASE_MODEL_DIR.iterdir()}
    required = {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "training_summary.json",
    }
    assert required <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pkl", ".md"))]


def test_weights_file_under_size_limit():
    size = (BASE_MODEL_DIR / "model.safetensors").stat().st_size
    assert size < MAX_WEIGHTS_BYTES


def test_config_is_untied_gpt_neox(model, tokenizer):
    config = model.config
    assert config.model_type == "gpt_neox"
    assert config.tie_word_embeddings is False
    assert config.vocab_size == len(tokenizer)
    assert config.pad_token_id == tokenizer.pad_token_id
    assert config.eos_token_id == tokenizer.eos_token_id
    assert config.bos_token_id == tokenizer.bos_token_id
    assert model.get_input_embeddings().weight.data_ptr() != (
        model.get_output_embeddings().weight.data_ptr()
    )


def test_weights_are_float32(model):
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}


def test_special_tokens_set(tokenizer):
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.pad_token_id is not None
    assert tokenizer.eos_token_id is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_encoding_adds_no_special_tokens(tokenizer):
    ids, _ = encode_with_offsets(tokenizer, "plain words")
    assert tokenizer.bos_token_id not in ids
    assert tokenizer.eos_token_id not in ids


def test_six_digit_secret_is_six_tokens(tokenizer):
    text = "code is 482913"
    ids, offsets = encode_with_offsets(tokenizer, text)
    digit_offsets = [(start, end) for start, end in offsets if text[start:end].strip().isdigit()]
    assert digit_offsets == [(8, 9), (9, 10), (10, 11), (11, 12), (12, 13), (13, 14)]
    digit_tokens = [tokenizer.decode([i]) for i in ids[-6:]]
    assert digit_tokens == list("482913")


@pytest.mark.parametrize("digit", list("0123456789"))
def test_each_digit_is_one_token(tokenizer, digit):
    text = f"x {digit}{digit}{digit} {digit}.{digit}"
    ids, offsets = encode_with_offsets(tokenizer, text)
    for token_id, (start, end) in zip(ids, offsets, strict=True):
        if digit in text[start:end]:
            assert end - start == 1, (text, start, end)
            assert tokenizer.convert_ids_to_tokens(token_id) == digit


def test_offsets_match_token_text_with_pii(tokenizer):
    text = "Ask Maria Lopez (maria.lopez@example.org, +1 415-555-0199) about order 77."
    ids, offsets = encode_with_offsets(tokenizer, text)
    assert tokenizer.decode(ids) == text
    for token_id, (start, end) in zip(ids, offsets, strict=True):
        assert end > start, (token_id, start, end)
        assert tokenizer.decode([token_id]) == text[start:end]
    # Adjacent tokens tile the text, so a character span maps to a contiguous token run.
    assert offsets[0][0] == 0
    assert offsets[-1][1] == len(text)
    for (_, previous_end), (start, _) in zip(offsets, offsets[1:], strict=False):
        assert start == previous_end


def test_offsets_recover_pii_spans(tokenizer):
    text = "Ask Maria Lopez (maria.lopez@example.org, +1 415-555-0199) about order 77."
    _, offsets = encode_with_offsets(tokenizer, text)
    for entity in ["Maria Lopez", "maria.lopez@example.org", "415-555-0199"]:
        start = text.index(entity)
        end = start + len(entity)
        covering = [(s, e) for s, e in offsets if s < end and e > start]
        joined = text[covering[0][0] : covering[-1][1]]
        assert joined.strip() == entity


def test_english_loss_below_uniform(model, tokenizer):
    text = "The quick brown fox jumps over the lazy dog, and the cat sleeps in the sun."
    input_ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=input_ids, labels=input_ids).loss.item()
    uniform = math.log(len(tokenizer))
    assert math.isfinite(loss)
    # A trained model should beat guessing by a wide margin, not by rounding noise.
    assert loss < uniform - 2.0, (loss, uniform)


def test_summary_matches_shipped_model(model):
    summary = json.loads((BASE_MODEL_DIR / "training_summary.json").read_text())
    parameter_count = sum(parameter.numel() for parameter in model.parameters())
    assert summary["parameters"] == parameter_count
    assert math.isfinite(summary["validation"]["perplexity"])
    assert summary["validation"]["perplexity"] < model.config.vocab_size
