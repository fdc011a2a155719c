from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.labels import overlapping_label, token_labels
from privft.data.records import Record, Span


def test_overlap_marks_leading_space_token():
    # " Dana" covers [10, 15) while the span starts at 11: it overlaps, so it is sensitive.
    assert overlapping_label(10, 15, [Span(11, 25, "PERSON")]) == "PERSON"


def test_adjacent_token_is_not_sensitive():
    assert overlapping_label(5, 11, [Span(11, 25, "PERSON")]) is None
    assert overlapping_label(25, 26, [Span(11, 25, "PERSON")]) is None


def test_zero_width_inside_span_is_sensitive():
    assert overlapping_label(12, 12, [Span(11, 25, "PERSON")]) == "PERSON"


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
