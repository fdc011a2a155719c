"""Summary of a synthesized data folder, written as manifest.json next to the JSONL files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SynthManifest:
    """Counts and canary insertion plan of one synthesized corpus, without its secrets.

    ``n_train`` counts ordinary training records; train.jsonl contains ``n_train +
    n_canary_insertions`` lines. ``insertions`` maps each canary id to how many times it was
    inserted, 0 for a reference canary. Byte-identical output for a seed also needs the same
    ``faker_version``, because Faker's data lists change between releases.
    """

    domain: str
    seed: int
    locale: str
    faker_version: str
    n_train: int
    n_test: int
    n_train_people: int
    n_test_people: int
    n_canary_insertions: int
    insertions: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SynthManifest:
        return cls(**payload)
