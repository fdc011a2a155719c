"""Records and canaries on disk: reading, validating and writing privft's JSONL formats.

A record is one line ``{"id": str, "text": str, "spans": [{"start", "end", "label"}], ...}``.
Spans are half-open character offsets into ``text``, sorted and non-overlapping. Extra keys are
kept in ``Record.meta`` (the synthetic corpora store ``person_id`` and ``canary_id`` there).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privft.storage import atomic_write_jsonl

logger = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20


class DataError(ValueError):
    """Invalid data file; the message lists every problem found (up to a limit) with its line."""


@dataclass(frozen=True)
class Span:
    """A sensitive entity: half-open character range ``[start, end)`` and its kind."""

    start: int
    end: int
    label: str


@dataclass
class Record:
    """One training or evaluation text with its sensitive spans."""

    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def canary_id(self) -> str | None:
        """Id of the canary this record inserts, or None for an ordinary record."""
        return self.meta.get("canary_id")

    def to_json(self) -> dict[str, Any]:
        spans = [{"start": s.start, "end": s.end, "label": s.label} for s in self.spans]
        return {"id": self.id, "text": self.text, "spans": spans, **self.meta}


@dataclass(frozen=True)
class Canary:
    """A secret drawn uniformly from a known space and placed in a fixed template.

    Following Carlini et al., "The Secret Sharer" (2019). ``repetitions`` is how many times the
    canary was inserted into the training data; 0 marks a reference canary that never was.
    """

    id: str
    prefix: str
    secret: str
    suffix: str
    repetitions: int
    alphabet: str = "0123456789"

    @property
    def text(self) -> str:
        return self.prefix + self.secret + self.suffix

    @property
    def space_size(self) -> int:
        return len(self.alphabet) ** len(self.secret)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "secret": self.secret,
            "suffix": self.suffix,
            "repetitions": self.repetitions,
            "alphabet": self.alphabet,
        }


@dataclass
class Dataset:
    """A data folder: training records, held-out records and canaries."""

    root: Path
    train: list[Record]
    test: list[Record]
    canaries: list[Canary]

    @property
    def train_plain(self) -> list[Record]:
        """Training records that are not canary insertions."""
        return [r for r in self.train if r.canary_id is None]


class _Problems:
    """Problems found in one file: the first ``MAX_REPORTED_PROBLEMS`` kept, the rest counted."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.count = 0

    def append(self, message: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append(message)

    def __bool__(self) -> bool:
        return self.count > 0


def _describe(value: Any) -> str:
    """Show a number, bool or null as itself, anything else by type only.

    Strings, lists and objects in a numeric field may be record text, so their content stays
    out of error messages.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return f"a {_json_type(value)}"


def _json_type(value: Any) -> str:
    names = {str: "string", list: "list", dict: "object", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, (int, float)) else "value")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found. Pass a folder with train.jsonl and test.jsonl, "
            "or make one with `privft data synth --out DIR`."
        ) from None
    except OSError as err:
        raise DataError(
            f"{path}: the file could not be read ({err.strerror or err}); "
            "pass a readable JSONL file"
        ) from None


def _iter_json_lines(path: Path, problems: _Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    raw = _read_bytes(path)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a UTF-8 byte order mark, as some editors write
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                f"{path}:{number}: bytes are not valid UTF-8 at byte {err.start + 1} of the line; "
                "re-encode the file as UTF-8"
            )
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as err:
            problems.append(
                f"{path}:{number}: malformed JSON ({err.msg} at column {err.colno}); "
                "each line must be one complete JSON object"
            )
            continue
        if not isinstance(obj, dict):
            problems.append(
                f"{path}:{number}: expected a JSON object, got a {_json_type(obj)}; "
                'write each record as {"id": ..., "text": ..., "spans": [...]}'
            )
            continue
        yield number, obj


def _offset_problem(raw: dict[str, Any]) -> str | None:
    for key in ("start", "end"):
        value = raw.get(key)
        if key not in raw:
            return f"field '{key}' is missing; give it as an integer character offset"
        if not isinstance(value, int) or isinstance(value, bool):
            return f"field '{key}' must be an integer character offset, got {_describe(value)}"
    return None


def _check_spans(where: str, text: str, raw_spans: Any, problems: _Problems) -> list[Span]:
    if raw_spans is None:
        return []
    if not isinstance(raw_spans, list):
        problems.append(
            f"{where}: field 'spans' must be a list of span objects, got {_describe(raw_spans)}"
        )
        return []
    spans: list[Span] = []
    for index, raw in enumerate(raw_spans):
        at = f"{where}: spans[{index}]"
        if not isinstance(raw, dict):
            problems.append(
                f"{at} must be an object with start, end and label, got {_describe(raw)}"
            )
            continue
        offset_problem = _offset_problem(raw)
        if offset_problem is not None:
            problems.append(f"{at}: {offset_problem}")
            continue
        start, end, label = raw["start"], raw["end"], raw.get("label", "PII")
        if start < 0 or end > len(text) or start >= end:
            problems.append(
                f"{at}: range [{start}, {end}) is invalid for a text of "
                f"{len(text)} characters; need 0 <= start < end <= {len(text)}"
            )
            continue
        if not isinstance(label, str) or not label.strip():
            displayed = repr(label) if isinstance(label, str) else _describe(label)
            problems.append(
                f"{at}: field 'label' must be a non-empty string such as \"PERSON\", "
                f"got {displayed}"
            )
            continue
        if spans and start < spans[-1].end:
            kind = "overlaps" if start >= spans[-1].start else "is not sorted after"
            problems.append(
                f"{at}: [{start}, {end}) {kind} the previous span "
                f"[{spans[-1].start}, {spans[-1].end}); spans must be sorted by start "
                "and must not overlap (merge overlapping spans into one)"
            )
            continue
        spans.append(Span(start, end, label))
    return spans


def _raise_if_any(path: Path, problems: _Problems) -> None:
    if not problems:
        return
    more = problems.count - len(problems.shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise DataError(
        f"{problems.count} problem(s) in {path}:\n  " + "\n  ".join(problems.shown) + tail
    )


def _record_id(where: str, obj: dict[str, Any], default: str, problems: _Problems) -> str | None:
    record_id = obj.get("id", default)
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        problems.append(
            f"{where}: field 'id' must be a string (or an integer), got {_describe(record_id)}"
        )
        return None
    record_id = str(record_id)
    if not record_id.strip():
        problems.append(f"{where}: field 'id' is empty; give each record a unique id")
        return None
    return record_id


def load_records(path: Path) -> list[Record]:
    """Read and validate a JSONL file of records; raise one DataError listing all problems.

    Problems name the file, line, field and value (never the record's text) and the fix.
    """
    path = Path(path)
    problems = _Problems()
    records: list[Record] = []
    first_line_of: dict[str, int] = {}
    for number, obj in _iter_json_lines(path, problems):
        where = f"{path}:{number}"
        text = obj.get("text")
        if not isinstance(text, str):
            got = "missing" if "text" not in obj else _describe(text)
            problems.append(
                f"{where}: field 'text' must be a string, got {got}; "
                "each record needs its text as a JSON string"
            )
            continue
        if not text.strip():
            problems.append(f"{where}: field 'text' is empty; remove the line or fill it")
            continue
        record_id = _record_id(where, obj, f"{path.stem}-{number}", problems)
        if record_id is None:
            continue
        if record_id in first_line_of:
            problems.append(
                f"{where}: duplicate id {record_id!r} (first seen on line "
                f"{first_line_of[record_id]}); ids must be unique within a file"
            )
            continue
        first_line_of[record_id] = number
        spans = _check_spans(where, text, obj.get("spans"), problems)
        meta = {k: v for k, v in obj.items() if k not in ("id", "text", "spans")}
        records.append(Record(record_id, text, spans, meta))
    if not records and not problems:
        problems.append(
            f"{path}: no records; the file is empty. Add one JSON object per line, or "
            "make a dataset with `privft data synth --out DIR`"
        )
    _raise_if_any(path, problems)
    return records


def _canary_problem(obj: dict[str, Any]) -> str | None:
    """Describe the first invalid canary field, never showing the secret; None if valid."""
    missing = [k for k in ("id", "prefix", "secret", "repetitions") if k not in obj]
    if missing:
        return (
            f"missing field(s) {', '.join(missing)}; a canary needs id, prefix, secret "
            "and repetitions"
        )

    for key in ("id", "prefix", "suffix"):
        if key in obj and not isinstance(obj[key], str):
            return f"field '{key}' must be a string, got {_describe(obj[key])}"
    if not obj["id"].strip():
        return "field 'id' is empty; give each canary a unique id"

    alphabet = obj.get("alphabet", "0123456789")
    if (
        not isinstance(alphabet, str)
        or len(set(alphabet)) < 2
        or len(set(alphabet)) != len(alphabet)
    ):
        displayed = repr(alphabet) if isinstance(alphabet, str) else _describe(alphabet)
        return (
            f"field 'alphabet' must be a string of at least 2 characters, each used once, "
            f"got {displayed}"
        )
    secret = obj["secret"]
    if not isinstance(secret, str) or not secret or any(c not in alphabet for c in secret):
        return (
            f"field 'secret' must be a non-empty string over the alphabet {alphabet!r} "
            "(value not shown)"
        )

    reps = obj["repetitions"]
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 0:
        return f"field 'repetitions' must be an integer >= 0, got {_describe(reps)}"
    return None


def load_canaries(path: Path) -> list[Canary]:
    """Read canaries.jsonl; a missing file means no canaries. Errors never show a secret."""
    path = Path(path)
    if not path.exists():
        return []
    problems = _Problems()
    canaries: list[Canary] = []
    first_line_of: dict[str, int] = {}
    for number, obj in _iter_json_lines(path, problems):
        where = f"{path}:{number}"
        problem = _canary_problem(obj)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        if obj["id"] in first_line_of:
            problems.append(
                f"{where}: duplicate canary id {obj['id']!r} (first seen on line "
                f"{first_line_of[obj['id']]}); ids must be unique within a file"
            )
            continue
        first_line_of[obj["id"]] = number
        canaries.append(
            Canary(
                obj["id"],
                obj["prefix"],
                obj["secret"],
                obj.get("suffix", ""),
                obj["repetitions"],
                obj.get("alphabet", "0123456789"),
            )
        )
    _raise_if_any(path, problems)
    return canaries


def person_names(records: list[Record]) -> set[str]:
    """Return the texts of the records' PERSON spans, case-folded with whitespace collapsed."""
    return {
        " ".join(record.text[span.start : span.end].split()).casefold()
        for record in records
        for span in record.spans
        if span.label == "PERSON"
    }


def warn_shared_people(dataset: Dataset) -> int:
    """Log one warning if people appear in both train and test; return how many do.

    The warning counts them and never shows a name.
    """
    shared = len(person_names(dataset.train) & person_names(dataset.test))
    if shared:
        logger.warning(
            "%d people (PERSON span values, compared case-insensitively) appear in both "
            "train.jsonl and test.jsonl of %s. The sensitive gap compares training people "
            "with unseen ones, so it is not meaningful while they overlap; keep each person "
            "in one split only",
            shared,
            dataset.root,
        )
    return shared


def load_dataset_dir(root: Path) -> Dataset:
    """Load ``train.jsonl``, ``test.jsonl`` and (optional) ``canaries.jsonl`` from a folder.

    Logs one warning if the same people appear in both splits (see ``warn_shared_people``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: data folder not found. Make one with "
            f"`privft data synth --domain customer_support --out {root}`."
        )
    dataset = Dataset(
        root=root,
        train=load_records(root / "train.jsonl"),
        test=load_records(root / "test.jsonl"),
        canaries=load_canaries(root / "canaries.jsonl"),
    )
    warn_shared_people(dataset)
    return dataset


def write_records(path: Path, records: list[Record]) -> None:
    atomic_write_jsonl(Path(path), (r.to_json() for r in records))


def write_canaries(path: Path, canaries: list[Canary]) -> None:
    atomic_write_jsonl(Path(path), (c.to_json() for c in canaries))
