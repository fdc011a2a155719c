"""Property-based tests of the JSONL reader and of span-to-token labelling."""

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.labels import overlapping_label, token_labels
from privft.data.records import DataError, Record, Span, load_records, write_records

LABELS = st.sampled_from(["PERSON", "EMAIL", "PHONE", "SECRET", "ADDRESS"])
RESERVED_KEYS = {"id", "text", "spans"}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Writing and reading files is slower per example than labelling.
FILE_SETTINGS = settings(SETTINGS, max_examples=30)


@st.composite
def span_lists(draw, length: int) -> list[Span]:
    """Sorted, non-overlapping spans inside a text of ``length`` characters."""
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=8)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        if start < end:
            spans.append(Span(start, end, draw(LABELS)))
    return spans


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@st.composite
def records(draw, record_id: str) -> Record:
    text = draw(st.text(min_size=1, max_size=60).filter(lambda t: t.strip()))
    meta = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=8).filter(lambda k: k not in RESERVED_KEYS),
            json_values,
            max_size=3,
        )
    )
    return Record(record_id, text, draw(span_lists(len(text))), meta)


@st.composite
def record_files(draw, min_size: int = 1) -> list[Record]:
    ids = draw(st.lists(st.text(min_size=1, max_size=12), min_size=min_size, max_size=6))
    ids = [i for i in dict.fromkeys(ids) if i.strip()]
    assume(len(ids) >= min_size)
    return [draw(records(record_id)) for record_id in ids]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("jsonl")


@FILE_SETTINGS
@given(data=record_files())
def test_records_round_trip(folder, data):
    path = folder / "round_trip.jsonl"
    write_records(path, data)
    assert load_records(path) == data


def truncate(line: bytes, draw) -> bytes:
    return line[: draw(st.integers(1, len(line) - 1))]


def bad_utf8(line: bytes, draw) -> bytes:
    at = draw(st.integers(0, len(line)))
    return line[:at] + b"\xff" + line[at:]


def non_object(line: bytes, draw) -> bytes:
    return draw(st.sampled_from([b"[1, 2]", b'"text"', b"42", b"null", b"true"]))


def edit_json(line: bytes, change) -> bytes:
    obj = json.loads(line)
    change(obj)
    return json.dumps(obj).encode()


def missing_text(line: bytes, draw) -> bytes:
    return edit_json(line, lambda obj: obj.pop("text"))


def text_not_string(line: bytes, draw) -> bytes:
    value = draw(st.sampled_from([None, 3, 1.5, True, ["a"], {"a": 1}]))
    return edit_json(line, lambda obj: obj.update(text=value))


def span_out_of_range(line: bytes, draw) -> bytes:
    def change(obj):
        obj["spans"] = [{"start": 0, "end": len(obj["text"]) + 1, "label": "PERSON"}]

    return edit_json(line, change)


def span_offset_not_integer(line: bytes, draw) -> bytes:
    value = draw(st.sampled_from([True, False, 1.5, "3", None, [1]]))
    key = draw(st.sampled_from(["start", "end"]))

    def change(obj):
        span = {"start": 0, "end": 1, "label": "PERSON"}
        span[key] = value
        obj["spans"] = [span]

    return edit_json(line, change)


def empty_text(line: bytes, draw) -> bytes:
    value = draw(st.sampled_from(["", " ", "\n\t "]))
    return edit_json(line, lambda obj: obj.update(text=value, spans=[]))


CORRUPTIONS = [
    truncate,
    bad_utf8,
    non_object,
    missing_text,
    text_not_string,
    span_out_of_range,
    span_offset_not_integer,
    empty_text,
]


@FILE_SETTINGS
@given(data=record_files(min_size=2), choice=st.data())
def test_corrupt_line_reported(folder, data, choice):
    lines = [json.dumps(r.to_json(), ensure_ascii=False).encode() for r in data]
    target = choice.draw(st.integers(0, len(lines) - 1), label="target")
    corrupt = choice.draw(st.sampled_from(CORRUPTIONS), label="corruption")
    lines[target] = corrupt(lines[target], choice.draw)
    # Blank lines in front of records shift their line numbers; the report must follow.
    numbered: list[bytes] = []
    target_number = 0
    for index, line in enumerate(lines):
        if choice.draw(st.booleans(), label="blank line before"):
            numbered.append(choice.draw(st.sampled_from([b"", b"  "]), label="blank line"))
        numbered.append(line)
        if index == target:
            target_number = len(numbered)
    path = folder / "corrupt.jsonl"
    path.write_bytes(b"\n".join(numbered) + b"\n")
    with pytest.raises(DataError) as info:
        load_records(path)
    message = str(info.value)
    assert message.startswith("1 problem(s)")
    assert f"corrupt.jsonl:{target_number}: " in message


@FILE_SETTINGS
@given(data=record_files(min_size=2), choice=st.data())
def test_duplicate_id_reported(folder, data, choice):
    target = choice.draw(st.integers(1, len(data) - 1), label="target")
    data[target].id = data[0].id
    path = folder / "duplicate.jsonl"
    write_records(path, data)
    pattern = rf"duplicate\.jsonl:{target + 1}: duplicate id .* \(first seen on line 1\)"
    with pytest.raises(DataError, match=pattern):
        load_records(path)


def overlaps(start: int, end: int, span: Span) -> bool:
    return start < span.end and span.start < end


@SETTINGS
@given(choice=st.data(), length=st.integers(1, 80))
def test_label_iff_overlap(choice, length):
    spans = choice.draw(span_lists(length), label="spans")
    start = choice.draw(st.integers(0, length - 1), label="start")
    end = choice.draw(st.integers(start + 1, length), label="end")
    hits = [span.label for span in spans if overlaps(start, end, span)]
    assert overlapping_label(start, end, spans) == (hits[0] if hits else None)


@st.composite
def tokenizations(draw, length: int) -> list[tuple[int, int]]:
    """Ordered token ranges over a text: contiguous pieces, some gaps left as skipped text."""
    inner = st.sets(st.integers(1, length - 1), max_size=length) if length > 1 else st.just(set())
    cuts = sorted(draw(inner))
    bounds = [0, *cuts, length]
    offsets = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        if draw(st.integers(0, 4)) == 0 and offsets:
            continue  # characters no token covers, as tokenizers skip some whitespace
        offsets.append((start, end))
    return offsets


@SETTINGS
@given(choice=st.data(), length=st.integers(1, 80))
def test_token_labels_iff_overlap(choice, length):
    spans = choice.draw(span_lists(length), label="spans")
    offsets = choice.draw(tokenizations(length), label="offsets")
    labels = token_labels(offsets, spans)
    assert len(labels) == len(offsets)
    for (start, end), label in zip(offsets, labels, strict=True):
        hits = [span.label for span in spans if overlaps(start, end, span)]
        assert label == (hits[0] if hits else None)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


# Letters, digits, whitespace and punctuation, plus characters that byte-level BPE splits into
# several byte tokens (accents, CJK, emoji).
TEXT_CHARACTERS = st.sampled_from(list("abcdeDWxyz0123456789  .,@-:\n") + list("éßö中😀"))


@SETTINGS
@given(choice=st.data(), text=st.text(TEXT_CHARACTERS, min_size=1, max_size=60))
def test_real_tokens_cover_spans(tokenizer, choice, text):
    spans = choice.draw(span_lists(len(text)), label="spans")
    encoded = encode_records([Record("r", text, spans)], tokenizer, max_length=10_000)[0]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pairs = list(zip(offsets["offset_mapping"], encoded.labels[1:-1], strict=True))
    for span in spans:
        for char in range(span.start, span.end):
            covering = [label for (start, end), label in pairs if start <= char < end]
            assert covering, f"no token covers character {char}"
            assert any(label is not None for label in covering), (
                f"character {char} of span [{span.start}, {span.end}) is in no labelled token"
            )


@SETTINGS
@given(choice=st.data(), text=st.text(TEXT_CHARACTERS, min_size=1, max_size=60))
def test_real_tokens_outside_spans_clean(tokenizer, choice, text):
    spans = choice.draw(span_lists(len(text)), label="spans")
    encoded = encode_records([Record("r", text, spans)], tokenizer, max_length=10_000)[0]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for (start, end), label in zip(offsets["offset_mapping"], encoded.labels[1:-1], strict=True):
        if start < end:
            touches = any(overlaps(start, end, span) for span in spans)
            assert (label is not None) == touches, f"token [{start}, {end}) labelled {label}"
