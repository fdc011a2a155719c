import json

import pytest

from privft.data.records import DataError, load_canaries, load_dataset_dir, load_records


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_valid_file_loads(tmp_path):
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            json.dumps(
                {"id": "a", "text": "Hi Dana", "spans": [{"start": 3, "end": 7, "label": "PERSON"}]}
            ),
        ],
    )
    records = load_records(path)
    assert records[0].spans[0].label == "PERSON"


def test_all_problems_listed_with_lines(tmp_path):
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            "{not json",
            json.dumps({"id": "b"}),
            json.dumps({"id": "c", "text": "abc", "spans": [{"start": 2, "end": 9}]}),
            json.dumps(
                {
                    "id": "d",
                    "text": "abcdef",
                    "spans": [{"start": 0, "end": 3}, {"start": 2, "end": 4}],
                }
            ),
            json.dumps({"id": "d", "text": "again"}),
        ],
    )
    with pytest.raises(DataError) as info:
        load_records(path)
    message = str(info.value)
    assert "5 problem(s)" in message
    assert "train.jsonl:1: malformed JSON" in message
    assert "train.jsonl:2: field 'text' must be a string, got missing" in message
    assert "train.jsonl:3: spans[0]: range [2, 9) is invalid" in message
    assert "train.jsonl:4: spans[1]: [2, 4) overlaps" in message
    assert "train.jsonl:5: duplicate id 'd'" in message


def test_non_utf8_line_named(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: bytes are not valid UTF-8"):
        load_records(path)


def test_empty_file_rejected(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [])
    with pytest.raises(DataError, match="no records"):
        load_records(path)


def test_missing_folder_names_fix(tmp_path):
    with pytest.raises(DataError, match="privft data synth"):
        load_dataset_dir(tmp_path / "absent")


def test_canary_error_hides_secret(tmp_path):
    path = write_lines(
        tmp_path / "canaries.jsonl",
        [
            json.dumps({"id": "c", "prefix": "code ", "secret": "12x456", "repetitions": 1}),
        ],
    )
    with pytest.raises(DataError) as info:
        load_canaries(path)
    assert "12x456" not in str(info.value)
