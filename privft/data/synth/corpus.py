"""Assembly of a synthetic corpus: records per split, canaries, and the files on disk."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import faker

from privft.data.records import Canary, Record, write_canaries, write_records
from privft.data.synth.canaries import draw_canaries, insertion_records, occupied_secrets
from privft.data.synth.domain import Domain, get_domain
from privft.data.synth.filler import draw_filler
from privft.data.synth.manifest import SynthManifest
from privft.data.synth.people import LOCALE, Person, draw_people
from privft.storage import atomic_write_json

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_PERSON = 3


@dataclass
class Corpus:
    """Records, canaries and the persons behind the records, before anything is written."""

    domain: Domain
    seed: int
    train: list[Record]
    test: list[Record]
    canaries: list[Canary]
    people: dict[str, list[Person]]

    def person(self, person_id: str) -> Person:
        """Find a person of either split by id, or raise KeyError."""
        for group in self.people.values():
            for person in group:
                if person.id == person_id:
                    return person
        raise KeyError(person_id)


def _plan_record_counts(rng: random.Random, n_records: int) -> list[int]:
    # One entry per person: how many records of the split mention that person.
    counts: list[int] = []
    remaining = n_records
    while remaining > 0:
        counts.append(min(rng.randint(1, MAX_RECORDS_PER_PERSON), remaining))
        remaining -= counts[-1]
    return counts


def _render_split(
    rng: random.Random, domain: Domain, split: str, people: list[Person], counts: list[int]
) -> list[Record]:
    # A person's records use distinct templates, and the order of records is shuffled.
    slots = [
        (person, template)
        for person, count in zip(people, counts, strict=True)
        for template in rng.sample(domain.templates, count)
    ]
    rng.shuffle(slots)
    records: list[Record] = []
    for index, (person, template) in enumerate(slots):
        text, spans = template.render({**draw_filler(rng, person), **person.pii_values()})
        meta = {"domain": domain.name, "person_id": person.id, "template": template.id}
        records.append(Record(f"{domain.id_prefix}-{split}-{index:06d}", text, spans, meta))
    return records


def _insert_at_random(
    rng: random.Random, records: list[Record], insertions: list[Record]
) -> list[Record]:
    merged = list(records)
    for record in insertions:
        merged.insert(rng.randint(0, len(merged)), record)
    return merged


def _check_arguments(
    seed: int,
    n_train: int,
    n_test: int,
    canary_repetitions: Sequence[int],
    canaries_per_repetition: int,
    n_reference_canaries: int,
) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    for name, value, minimum in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("canaries_per_repetition", canaries_per_repetition, 0),
        ("n_reference_canaries", n_reference_canaries, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    for count in canary_repetitions:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(
                f"canary_repetitions must contain integers >= 1, got {count!r}; "
                "use n_reference_canaries for canaries that are never inserted"
            )


def build_corpus(
    domain: str,
    *,
    n_train: int = 600,
    n_test: int = 200,
    seed: int = 0,
    canary_repetitions: Sequence[int] = (1, 4, 16),
    canaries_per_repetition: int = 2,
    n_reference_canaries: int = 4,
) -> Corpus:
    """Generate a corpus in memory; the arguments are those of `synthesize`.

    Raises:
        ValueError: unknown domain, a seed that is not an integer, or a size or count out of
            range.
    """
    spec = get_domain(domain)
    _check_arguments(
        seed, n_train, n_test, canary_repetitions, canaries_per_repetition, n_reference_canaries
    )
    rng = random.Random(f"records:{seed}")
    counts = {"train": _plan_record_counts(rng, n_train), "test": _plan_record_counts(rng, n_test)}
    people = draw_people(seed, {split: len(plan) for split, plan in counts.items()})
    splits = {
        split: _render_split(rng, spec, split, people[split], counts[split]) for split in counts
    }
    texts = (record.text for records in splits.values() for record in records)
    canaries = draw_canaries(
        random.Random(f"canaries:{seed}"),
        spec,
        canary_repetitions,
        canaries_per_repetition,
        n_reference_canaries,
        occupied_secrets(texts),
    )
    train = _insert_at_random(rng, splits["train"], insertion_records(canaries, spec))
    return Corpus(spec, seed, train, splits["test"], canaries, people)


def _manifest(corpus: Corpus) -> SynthManifest:
    return SynthManifest(
        domain=corpus.domain.name,
        seed=corpus.seed,
        locale=LOCALE,
        faker_version=faker.VERSION,
        n_train=sum(1 for record in corpus.train if record.canary_id is None),
        n_test=len(corpus.test),
        n_train_people=len(corpus.people["train"]),
        n_test_people=len(corpus.people["test"]),
        n_canary_insertions=sum(canary.repetitions for canary in corpus.canaries),
        insertions={canary.id: canary.repetitions for canary in corpus.canaries},
    )


def synthesize(
    domain: str,
    out_dir: Path,
    *,
    n_train: int = 600,
    n_test: int = 200,
    seed: int = 0,
    canary_repetitions: tuple[int, ...] = (1, 4, 16),
    canaries_per_repetition: int = 2,
    n_reference_canaries: int = 4,
) -> SynthManifest:
    """Generate a seeded synthetic corpus and write it to `out_dir`.

    Writes train.jsonl (ordinary records with canary insertions shuffled in), test.jsonl,
    canaries.jsonl (the only file with secrets) and manifest.json, each atomically. manifest.json
    is written last. The same arguments and Faker version give byte-identical files.

    Args:
        domain: a name in DOMAINS, e.g. ``customer_support`` or ``biographies``.
        out_dir: folder to write to; created if missing, and existing files are replaced.
        n_train: ordinary training records, not counting canary insertions.
        n_test: held-out records, about persons who never occur in train.
        seed: seed for Faker and every random choice.
        canary_repetitions: how many times to insert each canary group into train.
        canaries_per_repetition: canaries per entry of `canary_repetitions`.
        n_reference_canaries: canaries drawn like the others but never inserted.

    Returns:
        The manifest, also written to manifest.json.

    Raises:
        ValueError: unknown domain, a seed that is not an integer, or a size or count out of
            range.
    """
    corpus = build_corpus(
        domain,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        canary_repetitions=canary_repetitions,
        canaries_per_repetition=canaries_per_repetition,
        n_reference_canaries=n_reference_canaries,
    )
    out_dir = Path(out_dir)
    manifest = _manifest(corpus)
    write_records(out_dir / "train.jsonl", corpus.train)
    write_records(out_dir / "test.jsonl", corpus.test)
    write_canaries(out_dir / "canaries.jsonl", corpus.canaries)
    atomic_write_json(out_dir / "manifest.json", manifest.to_json())
    logger.info(
        "wrote %s corpus (seed %d) to %s: %d train records with %d canary insertions, "
        "%d test records, %d canaries",
        domain,
        seed,
        out_dir,
        manifest.n_train,
        manifest.n_canary_insertions,
        manifest.n_test,
        len(corpus.canaries),
    )
    return manifest
