"""Span-to-token labels on the main tokenizer families, checked against byte-level alignment.

Each family is built offline with the ``tokenizers`` library. The expected labels come from an
independent route: each token's bytes (undoing the byte-level or "▁" encoding) are laid end to
end over the text's UTF-8 bytes, which gives every token a character range without offsets.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from privft.data.encoding import encode_records
from privft.data.labels import overlapping_label, token_labels
from privft.data.records import Record, Span


def record(record_id: str, pieces: list[tuple[str, str | None]]) -> Record:
    text, spans = "", []
    for piece, label in pieces:
        if label is not None:
            spans.append(Span(len(text), len(text) + len(piece), label))
        text += piece
    return Record(record_id, text, spans)


CASES = [
    # PII at the start of the text, non-ASCII inside it.
    record("start", [("Zoë Ortiz", "PERSON"), (" called about order 4417.", None)]),
    # PII after a space, two spans in one sentence.
    record(
        "after-space",
        [
            ("Please call ", None),
            ("Ana Müller", "PERSON"),
            (" at ", None),
            ("555 0134", "PHONE"),
            (" today.", None),
        ],
    ),
    # PII next to punctuation on both sides.
    record(
        "punctuation",
        [
            ("Contact (", None),
            ("dana.w@example.com", "EMAIL"),
            ("), or ", None),
            ("José", "PERSON"),
            (".", None),
        ],
    ),
    # Non-ASCII letters throughout, a span ending at the text's end.
    record(
        "non-ascii",
        [("Łukasz Søren-Ødegård", "PERSON"), (" lives in ", None), ("Zürich", "CITY")],
    ),
    # A span that starts and ends inside tokens.
    record("inside", [("Order ID:A", None), ("4417", "ID"), ("B was shipped.", None)]),
]

CORPUS = [case.text for case in CASES] * 5 + [
    "The customer asked about the order and the agent answered politely.",
    "My name is Dana Whitfield and my phone number is 555 0134 2210.",
    "Please send the invoice to dana.whitfield@example.com before Friday.",
] * 20

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def byte_level_bpe(*, trim_offsets: bool, llama3: bool = False) -> Tokenizer:
    """GPT-2/Pythia style, or Llama-3 style (regex split, ``ignore_merges``)."""
    tokenizer = Tokenizer(models.BPE(ignore_merges=llama3))
    if llama3:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=trim_offsets)
    trainer = trainers.BpeTrainer(
        vocab_size=350,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def sentencepiece_unigram() -> Tokenizer:
    """Unigram model behind a Metaspace pre-tokenizer (T5 and ALBERT style)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.UnigramTrainer(
        vocab_size=150, special_tokens=["<s>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def sentencepiece_bpe() -> Tokenizer:
    """BPE with byte fallback behind "▁" normalizers (Llama-2 and Gemma style)."""
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=420, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], limit_alphabet=30
    )
    tokenizer.train_from_iterator([text.replace(" ", "▁") for text in CORPUS], trainer=trainer)
    return tokenizer


FAMILIES = {
    "gpt2": lambda: byte_level_bpe(trim_offsets=False),
    "gpt2-trimmed": lambda: byte_level_bpe(trim_offsets=True),
    "llama3": lambda: byte_level_bpe(trim_offsets=False, llama3=True),
    "sentencepiece-unigram": sentencepiece_unigram,
    "sentencepiece-bpe": sentencepiece_bpe,
}


def byte_decoder() -> dict[str, int]:
    """Invert the byte-to-printable-character table of byte-level BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, shift = {}, 0
    for value in range(256):
        if value in printable:
            table[chr(value)] = value
        else:
            table[chr(256 + shift)] = value
            shift += 1
    return table


BYTE_DECODER = byte_decoder()


def token_bytes(token: str, family: str) -> bytes:
    if family.startswith("sentencepiece"):
        if token.startswith("<0x") and token.endswith(">") and len(token) == 6:
            return bytes([int(token[3:5], 16)])
        return token.replace("▁", " ").encode("utf-8")
    return bytes(BYTE_DECODER[char] for char in token)


def ranges_from_bytes(text: str, tokens: list[str], family: str) -> list[tuple[int, int]]:
    """Character range of each token, found by laying its bytes over the text's bytes."""
    pieces = [token_bytes(token, family) for token in tokens]
    raw = text.encode("utf-8")
    if b"".join(pieces) != raw:
        # SentencePiece adds one "▁" in front of the text, and it stands for no character.
        assert b"".join(pieces) == b" " + raw
        first = next(i for i, piece in enumerate(pieces) if piece)
        pieces[first] = pieces[first][1:]
    char_of_byte = [i for i, char in enumerate(text) for _ in char.encode("utf-8")]
    ranges, position = [], 0
    for piece in pieces:
        if piece:
            first, last = char_of_byte[position], char_of_byte[position + len(piece) - 1]
            ranges.append((first, last + 1))
        else:
            ranges.append((char_of_byte[position], char_of_byte[position]))
        position += len(piece)
    return ranges


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request) -> tuple[str, Tokenizer]:
    return request.param, FAMILIES[request.param]()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_labels_match_bytes(family, case):
    name, tokenizer = family
    encoding = tokenizer.encode(case.text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, case.spans, text=case.text, tokens=encoding.tokens)
    expected = [
        overlapping_label(start, end, case.spans)
        for start, end in ranges_from_bytes(case.text, encoding.tokens, name)
    ]
    assert labels == expected


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_labels_cover_spans(family, case):
    name, tokenizer = family
    encoding = tokenizer.encode(case.text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, case.spans, text=case.text, tokens=encoding.tokens)
    ranges = ranges_from_bytes(case.text, encoding.tokens, name)
    for span in case.spans:
        covered = set()
        for (start, end), label in zip(ranges, labels, strict=True):
            if label == span.label:
                covered.update(range(start, end))
        visible = {i for i in range(span.start, span.end) if not case.text[i].isspace()}
        assert visible <= covered


def test_start_span_first_token(family):
    name, tokenizer = family
    case = CASES[0]
    encoding = tokenizer.encode(case.text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, case.spans, text=case.text, tokens=encoding.tokens)
    ranges = ranges_from_bytes(case.text, encoding.tokens, name)
    first = next(i for i, (start, end) in enumerate(ranges) if end > start)
    assert labels[first] == "PERSON"


def test_inserted_marker_not_sensitive():
    tokenizer = sentencepiece_unigram()
    case = CASES[3]
    encoding = tokenizer.encode(case.text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, case.spans, text=case.text, tokens=encoding.tokens)
    assert encoding.tokens[0] == "\u2581"
    assert labels[0] is None


def test_inside_span_marks_whole_tokens(family):
    name, tokenizer = family
    case = CASES[-1]
    encoding = tokenizer.encode(case.text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, case.spans, text=case.text, tokens=encoding.tokens)
    ranges = ranges_from_bytes(case.text, encoding.tokens, name)
    marked = [r for r, label in zip(ranges, labels, strict=True) if label == "ID"]
    assert marked[0][0] <= 10
    assert marked[-1][1] >= 14


def test_encode_records_per_family(family):
    name, tokenizer = family
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=tokenizer.id_to_token(0))
    encoded = encode_records(CASES, fast, max_length=200)
    for case, item in zip(CASES, encoded, strict=True):
        encoding = tokenizer.encode(case.text, add_special_tokens=False)
        expected = [
            overlapping_label(start, end, case.spans)
            for start, end in ranges_from_bytes(case.text, encoding.tokens, name)
        ]
        assert item.labels == [None, *expected, None]


TOKENIZERS = {name: build() for name, build in FAMILIES.items()}
LETTERS = "abcdeDana Whitfield.,;:()@-0123456789 éüøŁß"


@settings(max_examples=60, deadline=None)
@given(
    family_name=st.sampled_from(sorted(FAMILIES)),
    text=st.text(alphabet=LETTERS, min_size=2, max_size=40).filter(lambda t: t.strip()),
    bounds=st.lists(st.integers(0, 40), min_size=2, max_size=2, unique=True),
)
def test_random_spans_match_bytes(family_name, text, bounds):
    start, end = sorted(min(b, len(text)) for b in bounds)
    assume(start < end and text[start:end].strip())
    spans = [Span(start, end, "X")]
    encoding = TOKENIZERS[family_name].encode(text, add_special_tokens=False)
    labels = token_labels(encoding.offsets, spans, text=text, tokens=encoding.tokens)
    expected = [
        overlapping_label(a, b, spans)
        for a, b in ranges_from_bytes(text, encoding.tokens, family_name)
    ]
    assert labels == expected
