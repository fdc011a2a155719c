"""Tokenized records and the batch collator shared by training and evaluation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase as Tokenizer

from privft.data.labels import token_labels
from privft.data.records import Record

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class EncodedRecord:
    """A record as token ids, with the PII kind of each token (None = not sensitive).

    Position 0 is a start token (BOS, or EOS for tokenizers without one) so that the first real
    token is predicted from context too; it is never a target.
    """

    record_id: str
    input_ids: list[int]
    labels: list[str | None]
    canary_id: str | None = None

    @property
    def sensitive(self) -> list[bool]:
        return [label is not None for label in self.labels]


def start_token_id(tokenizer: Tokenizer) -> int:
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
    if token_id is None:
        token_id = tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token; set one of them")
    return token_id


def encode_records(
    records: Sequence[Record], tokenizer: Tokenizer, *, max_length: int
) -> list[EncodedRecord]:
    """Tokenize records with offsets, label sensitive tokens and truncate to ``max_length``.

    Truncated records lose their tail, and the labels are cut with the tokens. One warning
    counts the truncated records (by number, never by content).
    """
    encodings = tokenizer(
        [r.text for r in records],
        add_special_tokens=False,
        return_offsets_mapping=True,
    )
    start_id = start_token_id(tokenizer)
    eos_id = tokenizer.eos_token_id
    encoded: list[EncodedRecord] = []
    truncated = 0
    for record, ids, offsets in zip(
        records, encodings["input_ids"], encodings["offset_mapping"], strict=True
    ):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        labels = token_labels(
            offsets, record.spans, text=record.text, record_id=record.id, tokens=tokens
        )
        ids = [start_id, *ids]
        labels = [None, *labels]
        if eos_id is not None:
            ids.append(eos_id)
            labels.append(None)
        if len(ids) > max_length:
            truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
        encoded.append(EncodedRecord(record.id, ids, labels, record.canary_id))
    if truncated:
        logger.warning(
            "%d of %d records are longer than %d tokens and were truncated; their "
            "spans were cut to match",
            truncated,
            len(records),
            max_length,
        )
    return encoded


class CausalLMCollator:
    """Right-pad a list of encoded records into a dict batch for a causal LM.

    Emits ``position_ids`` of shape [B, T] explicitly: models with learned absolute position
    embeddings (GPT-2) otherwise broadcast one [1, T] row, and opacus then computes per-sample
    gradients of batch size 1 for that embedding. Padding gets label -100, so it is never a
    target. An empty list yields tensors with leading dimension 0 and the usual keys and dtypes.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[EncodedRecord]) -> dict[str, torch.Tensor]:
        length = max((len(item.input_ids) for item in items), default=1)
        batch = len(items)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.input_ids)
            ids = torch.tensor(item.input_ids, dtype=torch.long)
            input_ids[row, :n] = ids
            attention_mask[row, :n] = 1
            labels[row, 1:n] = ids[1:]
        position_ids = torch.arange(length, dtype=torch.long).repeat(batch, 1).contiguous()
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
        }


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each sample over its own real target tokens; shape [B].

    The logit at position i scores token i + 1. Padding and ignored positions never count, so
    appending padding to a batch leaves every sample's loss unchanged.
    """
    targets = labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).to(torch.promote_types(logits.dtype, torch.float32)),
        targets,
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    mask = (targets != IGNORE_INDEX).to(nll.dtype)
    return (nll * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
