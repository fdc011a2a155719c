import pytest
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.labels import TokenAlignmentError, overlapping_label, token_labels, token_ranges
from privft.data.records import Record, Span


def test_overlap_marks_leading_space_token():
    # " Dana" covers [10, 15) while the span starts at 11: it overlaps, so it is sensitive.
    assert overlapping_label(10, 15, [Span(11, 25, "PERSON")]) == "PERSON"


def test_adjacent_token_is_not_sensitive():
    assert overlapping_label(5, 11, [Span(11, 25, "PERSON")]) is None
    assert overlapping_label(25, 26, [Span(11, 25, "PERSON")]) is None


def test_zero_width_inside_span_is_sensitive():
    assert overlapping_label(12, 12, [Span(11, 25, "PERSON")]) == "PERSON"


def test_zero_width_at_span_edge_is_not():
    assert overlapping_label(11, 11, [Span(11, 25, "PERSON")]) is None
    assert overlapping_label(25, 25, [Span(11, 25, "PERSON")]) is None


def test_zero_width_takes_gap():
    # A lone space trimmed by GPT-2's trim_offsets reports (4, 4), and the gap [3, 4) is the space.
    assert token_ranges([(0, 3), (4, 4), (4, 9)], text_length=9) == [(0, 3), (3, 4), (4, 9)]


def test_missing_offset_takes_gap():
    ranges = token_ranges([(0, 3), None, (0, 0), (7, 9)], text_length=9)
    assert ranges == [(0, 3), (3, 7), (3, 7), (7, 9)]


def test_trimmed_space_inside_name():
    text = "Zoe Ortiz left"
    offsets = [(0, 3), (4, 4), (4, 9), (10, 14)]
    assert token_labels(offsets, [Span(0, 9, "PERSON")], text=text) == [
        "PERSON",
        "PERSON",
        "PERSON",
        None,
    ]


def test_trimmed_space_before_name():
    text = "Hi Zoe"
    offsets = [(0, 2), (3, 3), (3, 6)]
    assert token_labels(offsets, [Span(3, 6, "PERSON")], text=text) == [None, None, "PERSON"]


def test_missing_offset_inside_span():
    text = "Hi Zoe Ortiz"
    offsets = [(0, 2), (3, 6), None, (7, 12)]
    labels = token_labels(offsets, [Span(3, 12, "PERSON")], text=text)
    assert labels == [None, "PERSON", "PERSON", "PERSON"]


def test_all_zero_offsets_raise():
    with pytest.raises(TokenAlignmentError, match="all 3 token offsets are zero-width"):
        token_labels([(0, 0)] * 3, [Span(0, 2, "PERSON")], text="Hi Zoe")


def test_word_relative_offsets_raise():
    with pytest.raises(TokenAlignmentError, match="run backwards"):
        token_labels([(0, 5), (0, 5)], [Span(6, 11, "PERSON")], text="Hello world")


def test_uncovered_span_raises():
    with pytest.raises(TokenAlignmentError, match=r"span \[6, 11\) \(PERSON\) overlaps no token"):
        token_labels([(0, 5)], [Span(6, 11, "PERSON")], text="Hello world")


def test_offset_past_text_raises():
    with pytest.raises(TokenAlignmentError, match="ends past the text"):
        token_labels([(0, 5), (5, 20)], [], text="Hello world")


def test_split_character_tokens_share_range():
    # Byte-level BPE splits "\u00eb" into two tokens with the same range [2, 3).
    labels = token_labels([(0, 2), (2, 3), (2, 3), (3, 4)], [Span(2, 3, "X")], text="Zo\u00eb!")
    assert labels == [None, "X", "X", None]


class DegenerateTokenizer:
    """A tokenizer stand-in whose offsets are all (0, 0)."""

    bos_token_id = 0
    eos_token_id = 0

    def __call__(self, texts, **kwargs):
        ids = [[5] * len(text.split()) for text in texts]
        offsets = [[(0, 0)] * len(row) for row in ids]
        return {"input_ids": ids, "offset_mapping": offsets}

    def convert_ids_to_tokens(self, ids):
        return ["x"] * len(ids)


def test_encode_names_record_on_bad_offsets():
    record = Record("rec-7", "Hello Zoe Ortiz", [Span(6, 15, "PERSON")])
    with pytest.raises(TokenAlignmentError, match="record rec-7: all 3 token offsets"):
        encode_records([record], DegenerateTokenizer(), max_length=16)


def test_token_labels_per_token():
    labels = token_labels([(0, 2), (2, 5), (5, 9)], [Span(3, 4, "EMAIL")])
    assert labels == [None, "EMAIL", None]


def test_every_pii_character_is_covered(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("gpt_neox"))
    text = "Dana wrote: call 555 0134, or mail dana.w@example.com, Zoë Ortiz."
    spans = [
        Span(0, 4, "PERSON"),
        Span(17, 25, "PHONE"),
        Span(35, 53, "EMAIL"),
        Span(55, 64, "PERSON"),
    ]
    encoded = encode_records([Record("r", text, spans)], tokenizer, max_length=200)[0]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    sensitive_chars = set()
    for (start, end), label in zip(offsets["offset_mapping"], encoded.labels[1:-1], strict=True):
        if label is not None:
            sensitive_chars.update(range(start, end))
    for span in spans:
        assert set(range(span.start, span.end)) <= sensitive_chars
        decoded = tokenizer.decode(
            [
                i
                for i, label in zip(encoded.input_ids, encoded.labels, strict=True)
                if label == span.label
            ]
        )
        assert text[span.start : span.end] in decoded


def test_truncation_cuts_labels(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("gpt_neox"))
    record = Record("r", "word " * 50 + "Dana", [Span(250, 254, "PERSON")])
    encoded = encode_records([record], tokenizer, max_length=10)[0]
    assert len(encoded.input_ids) == 10
    assert len(encoded.labels) == 10
    assert not any(encoded.sensitive)
