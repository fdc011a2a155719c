"""Shared fixtures: a tokenizer trained offline, tiny models built from configs, tiny data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny test models gain nothing from a second thread, and on a 2-core machine a second thread
# per process makes concurrent test processes slower. Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

CORPUS = [
    "The customer asked about the order and the agent answered politely.",
    "My name is Dana Whitfield and my phone number is 555 0134 2210.",
    "Please send the invoice to dana.whitfield@example.com before Friday.",
    "He was born on 1984-03-12 and lives at 42 Elm Street, Springfield.",
    "The verification code is 482913. Do not share it with anyone.",
    "Thank you for contacting support; your card ending 4821 was updated.",
] * 20


def _train_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    fast.save_pretrained(folder)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    _train_tokenizer(folder)
    return folder


def build_tiny_model(arch: str, vocab_size: int, *, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised causal LM of about 100k parameters."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    if arch == "gpt_neox":
        config = GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=1,
        )
        return GPTNeoXForCausalLM(config)
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=256,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=1,
        )
        return GPT2LMHeadModel(config)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=1,
        )
        return LlamaForCausalLM(config)
    raise ValueError(arch)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir):
    """Factory: ``tiny_model_dir("gpt2")`` returns a saved model folder with its tokenizer."""
    from transformers import AutoTokenizer

    made: dict[str, Path] = {}

    def make(arch: str = "gpt_neox") -> Path:
        if arch not in made:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            model = build_tiny_model(arch, len(tokenizer))
            folder = tmp_path_factory.mktemp(f"model-{arch}")
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            made[arch] = folder
        return made[arch]

    return make


def _record(record_id: str, pieces: list[tuple[str, str | None]], **meta) -> dict:
    text, spans = "", []
    for piece, label in pieces:
        if label is not None:
            spans.append({"start": len(text), "end": len(text) + len(piece), "label": label})
        text += piece
    return {"id": record_id, "text": text, "spans": spans, **meta}


def write_tiny_data(folder: Path, *, n_train: int = 24, n_test: int = 12) -> Path:
    """A small dataset in privft's format: named people, emails, one canary inserted twice."""
    folder.mkdir(parents=True, exist_ok=True)
    first = ["Dana", "Omar", "Lena", "Ivan", "Mia", "Theo", "Ruth", "Sam", "Nina", "Paul"]
    last = ["Whitfield", "Ortiz", "Berg", "Novak", "Chen", "Hale", "Ito", "Kerr", "Lund", "Moss"]

    def person_record(split: str, i: int) -> dict:
        name = f"{first[i % 10]} {last[(i * 3 + (split == 'test')) % 10]}"
        email = f"{name.split()[0].lower()}{i}@example.com"
        return _record(
            f"{split}-{i:03d}",
            [
                ("Customer: Hi, I am ", None),
                (name, "PERSON"),
                (" and my email is ", None),
                (email, "EMAIL"),
                (". Agent: Thanks, the order is on its way.", None),
            ],
        )

    train = [person_record("train", i) for i in range(n_train)]
    test = [person_record("test", i + 100) for i in range(n_test)]
    prefix, suffix = "Note: the verification code is ", "."
    canaries = [
        {
            "id": "canary-0",
            "prefix": prefix,
            "secret": "482913",
            "suffix": suffix,
            "repetitions": 2,
        },
        {
            "id": "canary-ref-0",
            "prefix": prefix,
            "secret": "105577",
            "suffix": suffix,
            "repetitions": 0,
        },
    ]
    for r in range(2):
        train.append(
            _record(
                f"canary-0-r{r}",
                [(prefix, None), ("482913", "SECRET"), (suffix, None)],
                canary_id="canary-0",
            )
        )
    for name, rows in (("train", train), ("test", test), ("canaries", canaries)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    return folder


@pytest.fixture
def tiny_data_dir(tmp_path) -> Path:
    return write_tiny_data(tmp_path / "data")
