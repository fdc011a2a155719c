"""The PII tagger on hand-made texts: each kind at its exact offsets, and no plain numbers."""

from __future__ import annotations

import importlib.util
import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from privft.cli import app
from privft.data.records import Record, Span, load_records
from privft.data.tagging import (
    TaggingError,
    iban_valid,
    luhn_valid,
    make_tagger,
    tag_file,
    tag_records,
    tag_text,
)

FOUND = [
    ("Write to dana.whitfield@example.com.", "dana.whitfield@example.com", "EMAIL"),
    ("Card 4111 1111 1111 1111 was charged.", "4111 1111 1111 1111", "CARD"),
    ("Card 5500-0000-0000-0004 expired.", "5500-0000-0000-0004", "CARD"),
    ("Number 4012888888881881 on file.", "4012888888881881", "CARD"),
    ("Pay to GB82 WEST 1234 5698 7654 32 today.", "GB82 WEST 1234 5698 7654 32", "ACCOUNT"),
    ("My account number: 00123456789.", "00123456789", "ACCOUNT"),
    ("Call +44 20 7946 0958 after six.", "+44 20 7946 0958", "PHONE"),
    ("Call (555) 013-4221 now.", "(555) 013-4221", "PHONE"),
    ("Fax 555.013.4221 please.", "555.013.4221", "PHONE"),
    ("my phone number is 555 0134 2210.", "555 0134 2210", "PHONE"),
    ("mobile: 5550134221", "5550134221", "PHONE"),
    ("Born 1984-03-12 in a small town.", "1984-03-12", "DATE"),
    ("Seen on 12/03/1984 by the doctor.", "12/03/1984", "DATE"),
    ("Joined on 3 March 2015, left later.", "3 March 2015", "DATE"),
    ("Joined on Sept. 30, 2015 and stayed.", "Sept. 30, 2015", "DATE"),
    ("London SW1A 1AA, United Kingdom", "SW1A 1AA", "POSTAL_CODE"),
    ("Ottawa, ON K1A 0B1, Canada", "K1A 0B1", "POSTAL_CODE"),
    ("Springfield, IL 62704, USA", "62704", "POSTAL_CODE"),
    ("Send it to ZIP 90210-1234 soon.", "90210-1234", "POSTAL_CODE"),
]

PLAIN = [
    "I ordered 12 items and 3 more; order 48213 ships in 2024.",
    "The total was 1,250.00 dollars for 12 500 000 people.",
    "Version 3.11.7 fixed 404 errors on 8 of 10 servers.",
    "Card 4111 1111 1111 1112 fails its checksum.",
    "It happened on 2023-02-30, a day that does not exist.",
    "We shipped in 12345 ways and 2 boxes.",
    "Reference GB82 WEST 1234 5698 7654 33 is mistyped.",
]


@pytest.mark.parametrize(("text", "value", "label"), FOUND, ids=[f[2] for f in FOUND])
def test_found_at_offsets(text, value, label):
    start = text.index(value)
    assert tag_text(text) == [Span(start, start + len(value), label)]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_numbers_untagged(text):
    assert tag_text(text) == []


def test_luhn():
    assert luhn_valid("79927398713")


def test_luhn_rejects():
    assert not luhn_valid("79927398710")


def test_iban():
    assert iban_valid("DE89 3704 0044 0532 0130 00")


RICH = (
    "Dana (dana@example.org, +1 212 555 0134) paid with 4111111111111111 on 2024-01-05; "
    "account 99887766 at 10 Elm St, Springfield, IL 62704."
)


def test_sorted():
    starts = [span.start for span in tag_text(RICH)]
    assert starts == sorted(starts)


def test_no_overlap():
    spans = tag_text(RICH)
    assert all(a.end <= b.start for a, b in pairwise(spans))


def test_rich_labels():
    labels = [span.label for span in tag_text(RICH)]
    assert labels == ["EMAIL", "PHONE", "CARD", "DATE", "ACCOUNT", "POSTAL_CODE"]


def test_existing_spans_kept():
    text = "Reach Dana at dana@example.org today."
    own = Span(14, 30, "CONTACT")
    (record,), _ = tag_records([Record("r1", text, [own])])
    assert record.spans == [own]


def test_added_beside_existing():
    text = "Dana Whitfield, dana@example.org"
    (record,), added = tag_records([Record("r1", text, [Span(0, 14, "PERSON")])])
    assert added == {"EMAIL": 1}


TEXTS = st.text(alphabet="0123456789 +-./()@abcXYZ:,", max_size=60)


@settings(max_examples=60, deadline=None)
@given(TEXTS)
def test_spans_inside_text(text):
    assert all(0 <= span.start < span.end <= len(text) for span in tag_text(text))


@settings(max_examples=60, deadline=None)
@given(TEXTS)
def test_spans_never_overlap(text):
    assert all(a.end <= b.start for a, b in pairwise(tag_text(text)))


@pytest.fixture
def raw_file(tmp_path):
    rows = [
        {"id": "a", "text": "Customer: my email is omar.ortiz@example.net, thanks."},
        {
            "id": "b",
            "text": "Born 1990-07-21. Card 4111 1111 1111 1111.",
            "spans": [{"start": 22, "end": 41, "label": "SECRET"}],
            "source": "chat",
        },
        {"id": "c", "text": "I ordered 12 items."},
    ]
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_file_loads(raw_file, tmp_path):
    tag_file(raw_file, tmp_path / "out.jsonl")
    records = load_records(tmp_path / "out.jsonl")
    assert [len(r.spans) for r in records] == [1, 2, 0]


def test_file_keeps_meta(raw_file, tmp_path):
    tag_file(raw_file, tmp_path / "out.jsonl")
    assert load_records(tmp_path / "out.jsonl")[1].meta == {"source": "chat"}


def test_file_keeps_label(raw_file, tmp_path):
    tag_file(raw_file, tmp_path / "out.jsonl")
    assert load_records(tmp_path / "out.jsonl")[1].spans[1] == Span(22, 41, "SECRET")


def test_cli_counts(raw_file, tmp_path):
    args = ["data", "tag", str(raw_file), "--out", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(app, args)
    assert "spans added: DATE 1, EMAIL 1" in " ".join(result.output.split())


def test_cli_hides_text(raw_file, tmp_path):
    args = ["data", "tag", str(raw_file), "--out", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(app, args)
    assert "omar.ortiz" not in result.output


def test_cli_same_file(raw_file):
    result = CliRunner().invoke(app, ["data", "tag", str(raw_file), "--out", str(raw_file)])
    assert "is the input file" in result.output


def test_unknown_engine():
    with pytest.raises(TaggingError, match="unknown tagging engine 'spacy'"):
        make_tagger("spacy")


def test_presidio_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "presidio_analyzer" else real(name, *a),
    )
    with pytest.raises(TaggingError, match=r'pip install "privft\[presidio\]"'):
        make_tagger("presidio")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("presidio_analyzer") is None,
    reason='presidio-analyzer is not installed; pip install "privft[presidio]"',
)
def test_presidio_offline():
    text = "Mail dana@example.org, card 4111 1111 1111 1111."
    spans = make_tagger("presidio")(text)
    assert [(text[s.start : s.end], s.label) for s in spans] == [
        ("dana@example.org", "EMAIL"),
        ("4111 1111 1111 1111", "CARD"),
    ]
