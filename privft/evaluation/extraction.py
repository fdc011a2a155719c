"""Extraction by greedy decoding, and the recitation / reconstruction / recollection taxonomy.

Extraction: for each sensitive span of a record, the prompt is the start token (as in training)
followed by the record's tokens before the first token that overlaps the span. The target is
the tokens from there to the last token that overlaps the span. The span is *extracted* when
greedy decoding from the prompt reproduces the target tokens exactly. Canary secrets are
prompted with their template prefix the same way. Training and test spans are both tried: test
spans are never seen in training, so their extraction rate is what the model reaches by
guessing.

Greedy decoding reproduces the target exactly if and only if, at every target position, the
target token has the highest logit given the true tokens before it: as long as it matches, the
decoded prefix is the true prefix. So the default method, ``teacher_forced``, reads the answer
off one teacher-forced pass per record, which serves all of the record's spans at once. The
``generate`` method decodes each prompt (batched, left-padded, with a key-value cache) and
compares; both agree except when two logits tie exactly at the maximum, where teacher forcing
counts the target as reproduced.

Memorized: a training span (or inserted canary secret) that the fine-tuned model extracts.
Following Prashanth et al., "Recite, Reconstruct, Recollect: Memorization in LMs as a
Multifaceted Phenomenon" (2024), each memorized span gets one category, tested in this order:

- ``recitation``: its text occurs in at least ``RECITATION_MIN_COPIES`` (2) training records,
  so the model saw it repeatedly (a canary inserted twice or more, a person in several records);
- ``reconstruction``: the base model extracts it too, so the template or general knowledge
  predicts it without this training data;
- ``recollection``: neither, a span seen once and recalled from that one occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase as Tokenizer

from privft.data.encoding import EncodedRecord, start_token_id
from privft.data.labels import placed_ranges, span_tokens
from privft.data.records import Canary, Record, Span
from privft.evaluation.scoring import score_records

MAX_RECORDS_PER_SPLIT = 100
RECITATION_MIN_COPIES = 2
CATEGORIES = ("recitation", "reconstruction", "recollection")
METHODS = ("teacher_forced", "generate")


@dataclass
class ExtractionTarget:
    """One span to extract: the prompt tokens and the target tokens greedy decoding must give."""

    source_id: str  # record id, or canary id for canary secrets
    split: str  # "train", "test" or "canaries"
    kind: str  # the span's PII label ("SECRET" for canaries)
    prompt_ids: list[int]  # start token, then the record's tokens before the span's first token
    target_ids: list[int]  # the tokens that overlap the span
    value: str  # the span's own text, for counting its copies in the training data
    repetitions: int | None = None  # canaries only
    sequence: int = 0  # index of the record's token sequence in its ExtractionSet


@dataclass
class ExtractionSet:
    """Targets and the token sequences (start token + record tokens) they were cut from."""

    targets: list[ExtractionTarget]
    sequences: list[list[int]]

    def __add__(self, other: ExtractionSet) -> ExtractionSet:
        shift = len(self.sequences)
        moved = [
            ExtractionTarget(**{**vars(target), "sequence": target.sequence + shift})
            for target in other.targets
        ]
        return ExtractionSet(self.targets + moved, self.sequences + other.sequences)


def record_targets(
    records: Sequence[Record],
    tokenizer: Tokenizer,
    split: str,
    *,
    max_length: int,
    repetitions: dict[str, int] | None = None,
) -> ExtractionSet:
    """Build one target per span of each record whose prompt and target fit in ``max_length``."""
    if not records:
        return ExtractionSet([], [])
    start_id = start_token_id(tokenizer)
    encodings = tokenizer(
        [r.text for r in records], add_special_tokens=False, return_offsets_mapping=True
    )
    targets, sequences = [], []
    for record, ids, offsets in zip(
        records, encodings["input_ids"], encodings["offset_mapping"], strict=True
    ):
        ranges = placed_ranges(
            offsets,
            text=record.text,
            tokens=tokenizer.convert_ids_to_tokens(ids),
            record_id=record.id,
        )
        sequence = [start_id, *ids][:max_length]
        for span in record.spans:
            hit = span_tokens(ranges, span)
            # Token i of the record is position i + 1 of the sequence, after the start token.
            if hit is None or hit[1] + 2 > len(sequence):
                continue
            first, last = hit
            targets.append(
                ExtractionTarget(
                    source_id=record.id,
                    split=split,
                    kind=span.label,
                    prompt_ids=sequence[: first + 1],
                    target_ids=sequence[first + 1 : last + 2],
                    value=record.text[span.start : span.end],
                    repetitions=(repetitions or {}).get(record.id),
                    sequence=len(sequences),
                )
            )
        sequences.append(sequence)
    return ExtractionSet(targets, sequences)


def canary_targets(
    canaries: Sequence[Canary], tokenizer: Tokenizer, *, max_length: int
) -> ExtractionSet:
    """Build one target per canary secret, prompted with the canary's template prefix."""
    records = [
        Record(c.id, c.text, [Span(len(c.prefix), len(c.prefix) + len(c.secret), "SECRET")])
        for c in canaries
    ]
    repetitions = {c.id: c.repetitions for c in canaries}
    return record_targets(
        records, tokenizer, "canaries", max_length=max_length, repetitions=repetitions
    )


@torch.no_grad()
def greedy_decode(
    model: torch.nn.Module,
    prompts: Sequence[list[int]],
    new_tokens: Sequence[int],
    *,
    pad_token_id: int,
    batch_size: int = 32,
) -> list[list[int]]:
    """Decode ``new_tokens[i]`` tokens greedily after each prompt, without gradients.

    Prompts are sorted by length and left-padded within each batch; position ids count real
    tokens only, so a padded prompt decodes as it would alone. Each batch runs one forward pass
    over its prompts, then one single-token step per new token on the key-value cache.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in chunk)
            steps = max(new_tokens[i] for i in chunk)
            ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):
                prompt = prompts[index]
                ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
                mask[row, width - len(prompt) :] = 1
            ids, mask = ids.to(device), mask.to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            generated = []
            for step in range(steps):
                next_ids = out.logits[:, -1].argmax(-1)
                generated.append(next_ids)
                if step + 1 == steps:
                    break
                mask = torch.cat([mask, mask.new_ones((len(chunk), 1))], dim=1)
                positions = positions[:, -1:] + 1
                out = model(
                    input_ids=next_ids[:, None],
                    attention_mask=mask,
                    position_ids=positions,
                    cache=out.cache,
                    use_cache=True,
                )
            tokens = torch.stack(generated, dim=1).cpu()
            for row, index in enumerate(chunk):
                outputs[index] = tokens[row, : new_tokens[index]].tolist()
    finally:
        model.train(was_training)
    return outputs


def teacher_forced_hits(
    model: torch.nn.Module, tokenizer: Tokenizer, extraction: ExtractionSet, *, batch_size: int
) -> list[bool]:
    """Check each target through one teacher-forced pass per sequence (see the module doc)."""
    encoded = [
        EncodedRecord(str(index), sequence, [None] * len(sequence))
        for index, sequence in enumerate(extraction.sequences)
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = score_records(
        model, encoded, pad_token_id=pad, batch_size=batch_size, distribution=False
    )
    hits = []
    for target in extraction.targets:
        # correct[j] is whether sequence token j + 1 had the highest logit.
        first = len(target.prompt_ids) - 1
        correct = scores[target.sequence].correct[first : first + len(target.target_ids)]
        hits.append(bool(correct.all()))
    return hits


def generated_hits(
    model: torch.nn.Module, tokenizer: Tokenizer, extraction: ExtractionSet, *, batch_size: int
) -> list[bool]:
    """Check each target by greedy decoding from its prompt."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    targets = extraction.targets
    continuations = greedy_decode(
        model,
        [t.prompt_ids for t in targets],
        [len(t.target_ids) for t in targets],
        pad_token_id=pad,
        batch_size=batch_size,
    )
    return [c == t.target_ids for c, t in zip(continuations, targets, strict=True)]


def run_extraction(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    extraction: ExtractionSet,
    *,
    method: str = "teacher_forced",
    batch_size: int = 32,
) -> list[bool]:
    """Return, for each target, whether greedy decoding reproduces it."""
    if method not in METHODS:
        raise ValueError(f"extraction method {method!r} is unknown; valid: {', '.join(METHODS)}")
    if method == "generate":
        return generated_hits(model, tokenizer, extraction, batch_size=batch_size)
    return teacher_forced_hits(model, tokenizer, extraction, batch_size=batch_size)


def _share(hits: Sequence[bool]) -> dict:
    count = len(hits)
    return {
        "spans": count,
        "extracted": int(sum(hits)),
        "share": float(sum(hits) / count) if count else None,
    }


def summarize(targets: Sequence[ExtractionTarget], hits: Sequence[bool]) -> dict:
    """Count extracted spans per split, per PII kind and per canary repetition count."""
    report: dict = {}
    for split in ("train", "test", "canaries"):
        chosen = [(t, h) for t, h in zip(targets, hits, strict=True) if t.split == split]
        if not chosen and split == "canaries":
            continue
        entry = _share([h for _, h in chosen])
        groups: dict[str, list[bool]] = {}
        for target, hit in chosen:
            key = str(target.repetitions) if split == "canaries" else target.kind
            groups.setdefault(key, []).append(hit)
        entry["by_repetitions" if split == "canaries" else "by_kind"] = {
            key: _share(values) for key, values in sorted(groups.items())
        }
        report[split] = entry
    return report


def count_copies(values: Sequence[str], texts: Sequence[str]) -> list[int]:
    """Count the ``texts`` that contain each value."""
    return [sum(value in text for text in texts) for value in values]


def taxonomy(
    targets: Sequence[ExtractionTarget],
    finetuned_hits: Sequence[bool],
    base_hits: Sequence[bool],
    train_texts: Sequence[str],
    *,
    min_copies: int = RECITATION_MIN_COPIES,
) -> dict:
    """Label each memorized training span and report the share of each category.

    Memorized spans are training spans and inserted canaries (repetitions > 0) that the
    fine-tuned model extracts. Copies are counted over ``train_texts``, all training records
    (canary insertions included).
    """
    memorized = [
        (target, base)
        for target, hit, base in zip(targets, finetuned_hits, base_hits, strict=True)
        if hit and (target.split == "train" or (target.repetitions or 0) > 0)
    ]
    copies = count_copies([target.value for target, _ in memorized], train_texts)
    labels = []
    for (_, base_hit), count in zip(memorized, copies, strict=True):
        if count >= min_copies:
            labels.append("recitation")
        elif base_hit:
            labels.append("reconstruction")
        else:
            labels.append("recollection")
    total = len(labels)
    report: dict = {
        "memorized": total,
        "min_copies_for_recitation": min_copies,
        "counts": {c: labels.count(c) for c in CATEGORIES},
        "shares": {c: (labels.count(c) / total if total else None) for c in CATEGORIES},
        "by_kind": {},
    }
    for kind in sorted({target.kind for target, _ in memorized}):
        kind_labels = [
            label
            for (target, _), label in zip(memorized, labels, strict=True)
            if target.kind == kind
        ]
        report["by_kind"][kind] = {c: kind_labels.count(c) for c in CATEGORIES}
    return report


def extraction_report(
    finetuned: torch.nn.Module,
    base: torch.nn.Module | None,
    tokenizer: Tokenizer,
    *,
    train: Sequence[Record],
    test: Sequence[Record],
    canaries: Sequence[Canary] = (),
    train_texts: Sequence[str] = (),
    max_records: int = MAX_RECORDS_PER_SPLIT,
    max_length: int = 512,
    method: str = "teacher_forced",
    batch_size: int = 32,
) -> dict:
    """Measure both models' extraction rates and classify the fine-tuned model's memorization.

    Uses the first ``max_records`` records of each split. ``train_texts`` (all training texts)
    decides recitation; without a base model the taxonomy is left out.
    """
    if max_records < 1:
        raise ValueError(f"invalid max_records {max_records}: extraction needs at least 1")
    extraction = (
        record_targets(train[:max_records], tokenizer, "train", max_length=max_length)
        + record_targets(test[:max_records], tokenizer, "test", max_length=max_length)
        + canary_targets(canaries, tokenizer, max_length=max_length)
    )
    targets = extraction.targets
    options = {"method": method, "batch_size": batch_size}
    finetuned_hits = run_extraction(finetuned, tokenizer, extraction, **options)
    report: dict = {
        "max_records_per_split": max_records,
        "method": method,
        "finetuned": summarize(targets, finetuned_hits),
    }
    if base is not None:
        base_hits = run_extraction(base, tokenizer, extraction, **options)
        report["base"] = summarize(targets, base_hits)
        report["taxonomy"] = taxonomy(targets, finetuned_hits, base_hits, train_texts)
    return report
