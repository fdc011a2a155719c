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


def _iter_json_lines(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found. Pass a folder with train.jsonl and test.jsonl, "
            "or make one with `privft data synth --out DIR`."
        ) from None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                f"{path}:{number}: bytes are not valid UTF-8 at byte {err.start}; "
                "re-encode the file as UTF-8"
            )
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as err:
            problems.append(
                f"{path}:{number}: malformed JSON ({err.msg} at column {err.colno}); "
                "each line must be one JSON object"
            )
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            continue
        yield number, obj


def _check_spans(where: str, text: str, raw_spans: Any, problems: list[str]) -> list[Span]:
    if raw_spans is None:
        return []
    if not isinstance(raw_spans, list):
        problems.append(f"{where}: field 'spans' must be a list, got {type(raw_spans).__name__}")
        return []
    spans: list[Span] = []
    for index, raw in enumerate(raw_spans):
        at = f"{where}: spans[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{at} must be an object with start, end and label")
            continue
        start, end, label = raw.get("start"), raw.get("end"), raw.get("label", "PII")
        bad_int = [
            k
            for k, v in (("start", start), ("end", end))
            if not isinstance(v, int) or isinstance(v, bool)
        ]
        if bad_int:
            problems.append(
                f"{at}: '{bad_int[0]}' must be an integer character offset, "
                f"got {raw.get(bad_int[0])!r}"
            )
            continue
        if start < 0 or end > len(text) or start >= end:
            problems.append(
                f"{at}: range [{start}, {end}) is invalid for a text of "
                f"{len(text)} characters; need 0 <= start < end <= {len(text)}"
            )
            continue
        if not isinstance(label, str) or not label:
            problems.append(f"{at}: 'label' must be a non-empty string, got {label!r}")
            continue
        if spans and start < spans[-1].end:
            kind = "overlaps" if start >= spans[-1].start else "is not sorted after"
            problems.append(
                f"{at}: [{start}, {end}) {kind} the previous span "
                f"[{spans[-1].start}, {spans[-1].end}); spans must be sorted by start "
                "and must not overlap"
            )
            continue
        spans.append(Span(start, end, label))
    return spans


def _raise_if_any(path: Path, problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise DataError(f"{len(problems)} problem(s) in {path}:\n  " + "\n  ".join(shown) + tail)


def load_records(path: Path) -> list[Record]:
    """Read and validate a JSONL file of records; raise one DataError listing all problems."""
    path = Path(path)
    problems: list[str] = []
    records: list[Record] = []
    first_line_of: dict[str, int] = {}
    for number, obj in _iter_json_lines(path, problems):
        where = f"{path}:{number}"
        text = obj.get("text")
        if not isinstance(text, str):
            got = "missing" if text is None else f"a {type(text).__name__}"
            problems.append(f"{where}: field 'text' must be a string, got {got}")
            continue
        if not text.strip():
            problems.append(f"{where}: field 'text' is empty; remove the line or fill it")
            continue
        record_id = obj.get("id", f"{path.stem}-{number}")
        if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
            problems.append(f"{where}: field 'id' must be a string, got {record_id!r}")
            continue
        record_id = str(record_id)
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
        problems.append(f"{path}: no records; the file is empty")
    _raise_if_any(path, problems)
    return records


def load_canaries(path: Path) -> list[Canary]:
    """Read canaries.jsonl; a missing file means no canaries."""
    path = Path(path)
    if not path.exists():
        return []
    problems: list[str] = []
    canaries: list[Canary] = []
    for number, obj in _iter_json_lines(path, problems):
        where = f"{path}:{number}"
        missing = [k for k in ("id", "prefix", "secret", "repetitions") if k not in obj]
        if missing:
            problems.append(f"{where}: missing field(s) {', '.join(missing)}")
            continue
        alphabet = obj.get("alphabet", "0123456789")
        secret = obj["secret"]
        if not isinstance(secret, str) or not secret or any(c not in alphabet for c in secret):
            problems.append(
                f"{where}: 'secret' must be a non-empty string over the alphabet "
                f"{alphabet!r} (value not shown)"
            )
            continue
        reps = obj["repetitions"]
        if not isinstance(reps, int) or reps < 0:
            problems.append(f"{where}: 'repetitions' must be an integer >= 0, got {reps!r}")
            continue
        canaries.append(
            Canary(str(obj["id"]), obj["prefix"], secret, obj.get("suffix", ""), reps, alphabet)
        )
    _raise_if_any(path, problems)
    return canaries


def load_dataset_dir(root: Path) -> Dataset:
    """Load ``train.jsonl``, ``test.jsonl`` and (optional) ``canaries.jsonl`` from a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: data folder not found. Make one with "
            f"`privft data synth --domain customer_support --out {root}`."
        )
    return Dataset(
        root=root,
        train=load_records(root / "train.jsonl"),
        test=load_records(root / "test.jsonl"),
        canaries=load_canaries(root / "canaries.jsonl"),
    )


def write_records(path: Path, records: list[Record]) -> None:
    atomic_write_jsonl(Path(path), (r.to_json() for r in records))


def write_canaries(path: Path, canaries: list[Canary]) -> None:
    atomic_write_jsonl(Path(path), (c.to_json() for c in canaries))
