"""Data validation: every problem names file, line, field and value, and no record text leaks."""

import json
import logging

import pytest
from transformers import AutoTokenizer

from privft.data.encoding import encode_records
from privft.data.records import (
    MAX_REPORTED_PROBLEMS,
    DataError,
    Record,
    Span,
    load_canaries,
    load_dataset_dir,
    load_records,
)

SECRET_TEXT = "Hi, I am Dana Whitfield"


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def record_line(record_id="a", text=SECRET_TEXT, spans=None, **extra):
    spans = [{"start": 9, "end": 23, "label": "PERSON"}] if spans is None else spans
    return json.dumps({"id": record_id, "text": text, "spans": spans, **extra})


def problems_of(tmp_path, *lines):
    """Load a train.jsonl of ``lines`` and return the DataError message."""
    path = write_lines(tmp_path / "train.jsonl", list(lines))
    with pytest.raises(DataError) as info:
        load_records(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "a", "text": "x"', r"train.jsonl:1: malformed JSON .* at column"),
        ("[1, 2]", r"train.jsonl:1: expected a JSON object, got a list"),
        ('"just text"', r"train.jsonl:1: expected a JSON object, got a string"),
        ('{"id": "a"}', r"train.jsonl:1: field 'text' must be a string, got missing"),
        ('{"id": "a", "text": 7}', r"train.jsonl:1: field 'text' must be a string, got 7"),
        ('{"id": "a", "text": null}', r"field 'text' must be a string, got null"),
        ('{"id": "a", "text": "   "}', r"train.jsonl:1: field 'text' is empty"),
        ('{"id": true, "text": "x"}', r"field 'id' must be a string \(or an integer\), got true"),
        ('{"id": " ", "text": "x"}', r"field 'id' is empty"),
        ('{"id": "a", "text": "x", "spans": 3}', r"field 'spans' must be a list"),
        ('{"id": "a", "text": "x", "spans": [5]}', r"spans\[0\] must be an object"),
    ],
)
def test_record_problem_named(tmp_path, line, expected):
    with pytest.raises(DataError, match=expected):
        load_records(write_lines(tmp_path / "train.jsonl", [line]))


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ({"start": -1, "end": 4}, r"spans\[0\]: range \[-1, 4\) is invalid for a text of 23"),
        ({"start": 9, "end": 24}, r"range \[9, 24\) is invalid .* need 0 <= start < end <= 23"),
        ({"start": 5, "end": 5}, r"range \[5, 5\) is invalid"),
        ({"start": 7, "end": 3}, r"range \[7, 3\) is invalid"),
        ({"start": 1.5, "end": 4}, r"field 'start' must be an integer character offset, got 1.5"),
        ({"start": 1, "end": True}, r"field 'end' must be an integer character offset, got true"),
        ({"start": False, "end": 3}, r"field 'start' must be an integer .* got false"),
        ({"start": "9", "end": 12}, r"field 'start' must be an integer .* got a string"),
        ({"end": 12}, r"field 'start' is missing"),
        ({"start": 1, "end": 4, "label": ""}, r"field 'label' must be a non-empty string"),
        ({"start": 1, "end": 4, "label": 3}, r"field 'label' must be a non-empty string .* got 3"),
    ],
)
def test_span_problem_named(tmp_path, span, expected):
    with pytest.raises(DataError, match=expected):
        load_records(write_lines(tmp_path / "train.jsonl", [record_line(spans=[span])]))


def test_overlapping_spans_rejected(tmp_path):
    spans = [{"start": 0, "end": 5}, {"start": 3, "end": 8}]
    message = problems_of(tmp_path, record_line(spans=spans))
    assert "train.jsonl:1: spans[1]: [3, 8) overlaps the previous span [0, 5)" in message


def test_unsorted_spans_rejected(tmp_path):
    spans = [{"start": 9, "end": 12}, {"start": 0, "end": 4}]
    message = problems_of(tmp_path, record_line(spans=spans))
    assert "spans[1]: [0, 4) is not sorted after the previous span [9, 12)" in message


def test_adjacent_spans_accepted(tmp_path):
    spans = [{"start": 0, "end": 4}, {"start": 4, "end": 8}]
    records = load_records(write_lines(tmp_path / "train.jsonl", [record_line(spans=spans)]))
    assert [s.end for s in records[0].spans] == [4, 8]


def test_duplicate_id_names_first_line(tmp_path):
    message = problems_of(tmp_path, record_line("a"), record_line("b"), record_line("a"))
    assert "train.jsonl:3: duplicate id 'a' (first seen on line 1)" in message


def test_non_utf8_names_line_and_byte(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(record_line("a").encode() + b"\n" + b'{"id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: bytes are not valid UTF-8 at byte 25"):
        load_records(path)


def test_byte_order_mark_accepted(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + record_line("a").encode() + b"\n")
    assert load_records(path)[0].id == "a"


def test_blank_lines_keep_numbering(tmp_path):
    message = problems_of(tmp_path, record_line("a"), "", "  ", "{oops")
    assert "train.jsonl:4: malformed JSON" in message


def test_blank_only_file_is_empty(tmp_path):
    with pytest.raises(DataError, match=r"train.jsonl: no records; the file is empty"):
        load_records(write_lines(tmp_path / "train.jsonl", ["", "   "]))


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "train.jsonl").mkdir()
    with pytest.raises(DataError, match=r"train.jsonl: the file could not be read"):
        load_records(tmp_path / "train.jsonl")


def test_all_problems_collected(tmp_path):
    lines = [record_line(f"r{i}", spans=[{"start": 0, "end": 99}]) for i in range(3)]
    message = problems_of(tmp_path, *lines, "{bad")
    assert message.startswith(f"4 problem(s) in {tmp_path / 'train.jsonl'}")
    for number in (1, 2, 3, 4):
        assert f"train.jsonl:{number}: " in message


def test_problem_list_capped(tmp_path):
    extra = 7
    message = problems_of(tmp_path, *(["{bad"] * (MAX_REPORTED_PROBLEMS + extra)))
    assert message.startswith(f"{MAX_REPORTED_PROBLEMS + extra} problem(s)")
    assert message.count("malformed JSON") == MAX_REPORTED_PROBLEMS
    assert message.endswith(f"... and {extra} more")


@pytest.mark.parametrize(
    "line",
    [
        record_line(spans=[{"start": SECRET_TEXT, "end": 4}]),
        record_line(spans=[{"start": 0, "end": 4, "label": [SECRET_TEXT]}]),
        record_line(spans=[SECRET_TEXT]),
        record_line(spans={"text": SECRET_TEXT}),
        json.dumps({"id": [SECRET_TEXT], "text": SECRET_TEXT}),
        json.dumps({"id": "a", "text": [SECRET_TEXT]}),
        json.dumps([SECRET_TEXT]),
        '{"id": "a", "text": "' + SECRET_TEXT + '", oops}',
        record_line(spans=[{"start": 0, "end": 99}]),
    ],
)
def test_errors_hide_record_text(tmp_path, line):
    message = problems_of(tmp_path, line)
    assert "Dana" not in message


def canary_line(**fields):
    canary = {"id": "c", "prefix": "code ", "secret": "482913", "repetitions": 1, **fields}
    return json.dumps({k: v for k, v in canary.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"secret": None}, r"canaries.jsonl:1: missing field\(s\) secret"),
        ({"repetitions": -1}, r"field 'repetitions' must be an integer >= 0, got -1"),
        ({"repetitions": True}, r"field 'repetitions' must be an integer >= 0, got true"),
        ({"repetitions": 1.5}, r"field 'repetitions' must be an integer >= 0, got 1.5"),
        ({"prefix": 3}, r"field 'prefix' must be a string, got 3"),
        ({"suffix": ["x"]}, r"field 'suffix' must be a string, got a list"),
        ({"id": ""}, r"field 'id' is empty"),
        ({"alphabet": "00"}, r"field 'alphabet' must be a string of at least 2 characters"),
        ({"secret": "48291x"}, r"field 'secret' must be a non-empty string over the alphabet"),
        ({"secret": ""}, r"field 'secret' must be a non-empty string"),
    ],
)
def test_canary_problem_named(tmp_path, fields, expected):
    with pytest.raises(DataError, match=expected):
        load_canaries(write_lines(tmp_path / "canaries.jsonl", [canary_line(**fields)]))


def test_canary_duplicate_id(tmp_path):
    path = write_lines(tmp_path / "canaries.jsonl", [canary_line(), canary_line()])
    with pytest.raises(DataError, match=r"canaries.jsonl:2: duplicate canary id 'c'"):
        load_canaries(path)


def test_canary_secret_hidden(tmp_path):
    path = write_lines(tmp_path / "canaries.jsonl", [canary_line(secret="4829x3")])
    with pytest.raises(DataError) as info:
        load_canaries(path)
    assert "4829x3" not in str(info.value)


def test_missing_canaries_mean_none(tmp_path):
    assert load_canaries(tmp_path / "canaries.jsonl") == []


def person_record(record_id, name):
    text = f"Customer: Hi, I am {name}. Thanks."
    start = text.index(name)
    return json.dumps(
        {
            "id": record_id,
            "text": text,
            "spans": [{"start": start, "end": start + len(name), "label": "PERSON"}],
        }
    )


def write_split_data(folder, train_names, test_names):
    folder.mkdir()
    write_lines(
        folder / "train.jsonl", [person_record(f"tr{i}", n) for i, n in enumerate(train_names)]
    )
    write_lines(
        folder / "test.jsonl", [person_record(f"te{i}", n) for i, n in enumerate(test_names)]
    )
    return folder


def test_shared_people_warned_once(tmp_path, caplog):
    data = write_split_data(
        tmp_path / "data",
        ["Dana Whitfield", "Omar Ortiz", "Lena Berg", "Omar Ortiz"],
        ["dana  whitfield", "OMAR ORTIZ", "Ivan Novak"],
    )
    with caplog.at_level(logging.WARNING, logger="privft"):
        load_dataset_dir(data)
    warnings = [r for r in caplog.records if "appear in both" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("2 people (PERSON span values")
    assert "not meaningful" in warnings[0].getMessage()


def test_shared_people_names_hidden(tmp_path, caplog):
    data = write_split_data(tmp_path / "data", ["Dana Whitfield"], ["Dana Whitfield"])
    with caplog.at_level(logging.DEBUG, logger="privft"):
        load_dataset_dir(data)
    assert "appear in both" in caplog.text
    assert "whitfield" not in caplog.text.lower()


def test_distinct_people_no_warning(tmp_path, caplog):
    data = write_split_data(tmp_path / "data", ["Dana Whitfield"], ["Dana Whitfielder"])
    with caplog.at_level(logging.WARNING, logger="privft"):
        load_dataset_dir(data)
    assert "appear in both" not in caplog.text


def test_tiny_data_has_no_shared_people(tiny_data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="privft"):
        load_dataset_dir(tiny_data_dir)
    assert "appear in both" not in caplog.text


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir("gpt_neox"))


def long_record(record_id, words):
    text = "word " * words + "Dana Whitfield called."
    start = text.index("Dana")
    return Record(record_id, text, [Span(start, start + len("Dana Whitfield"), "PERSON")])


def test_truncation_warns_once_with_count(tokenizer, caplog):
    records = [long_record("a", 40), long_record("b", 40), long_record("c", 1)]
    with caplog.at_level(logging.WARNING, logger="privft"):
        encode_records(records, tokenizer, max_length=30)
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("2 of 3 records are longer than 30 tokens")
    assert "Dana" not in caplog.text


def test_short_records_no_truncation_warning(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="privft"):
        encode_records([long_record("a", 1)], tokenizer, max_length=200)
    assert "truncated" not in caplog.text


def test_cut_span_keeps_labelled_head(tokenizer):
    record = long_record("a", 10)
    full = encode_records([record], tokenizer, max_length=500)[0]
    first = full.labels.index("PERSON")
    last = len(full.labels) - 1 - full.labels[::-1].index("PERSON")
    assert last - first >= 2
    cut = first + 2  # keeps the span's first two tokens and drops the rest
    encoded = encode_records([record], tokenizer, max_length=cut)[0]
    assert len(encoded.input_ids) == cut
    assert encoded.input_ids == full.input_ids[:cut]
    assert encoded.labels == full.labels[:cut]
    assert encoded.labels[first:] == ["PERSON", "PERSON"]
