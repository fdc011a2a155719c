"""Tests of the synthetic corpus generator: spans, split isolation, determinism and canaries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privft.data import Record, load_dataset_dir
from privft.data.synth import (
    DOMAINS,
    PII_LABELS,
    Corpus,
    SynthManifest,
    build_corpus,
    get_domain,
    synthesize,
)
from privft.data.synth.canaries import SECRET_LABEL
from privft.data.synth.template import FIELD_LABELS

DOMAIN_NAMES = sorted(DOMAINS)
FILES = ("train.jsonl", "test.jsonl", "canaries.jsonl", "manifest.json")
# Person values that are unique to one person. A first or last name alone is left out because
# it may recur inside another value, such as a street named after a common surname.
WHOLE_VALUE_FIELDS = ("name", "email", "phone", "address", "card", "account", "dob", "dob_numeric")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=DOMAIN_NAMES)
def corpus(request) -> Corpus:
    return build_corpus(request.param, seed=7)


def plain_records(corpus: Corpus) -> list[Record]:
    return [r for r in corpus.train + corpus.test if r.canary_id is None]


def assert_span_invariants(record: Record, labels: frozenset[str]) -> None:
    previous_end = 0
    for span in record.spans:
        assert span.label in labels, record.id
        assert 0 <= span.start < span.end <= len(record.text), record.id
        assert span.start >= previous_end, f"{record.id}: spans overlap or are unsorted"
        piece = record.text[span.start : span.end]
        assert piece == piece.strip(), f"{record.id}: span has surrounding whitespace"
        previous_end = span.end


def assert_spans_match_fields(corpus: Corpus, record: Record) -> None:
    # The template names the fields in order; the person pool contains the values generated.
    templates = {t.id: t for t in corpus.domain.templates}
    template = templates[record.meta["template"]]
    values = corpus.person(record.meta["person_id"]).pii_values()
    expected = [(values[field], FIELD_LABELS[field]) for field in template.pii_fields]
    actual = [(record.text[s.start : s.end], s.label) for s in record.spans]
    assert actual == expected, record.id


def test_domain_registry_names():
    assert set(DOMAINS) == {"customer_support", "biographies"}
    for name in DOMAINS:
        assert get_domain(name).name == name


def test_unknown_domain_lists_valid_names():
    with pytest.raises(ValueError, match="biographies, customer_support"):
        get_domain("medical")
    with pytest.raises(ValueError, match="valid domains"):
        build_corpus("medical")


@pytest.mark.parametrize("name", DOMAIN_NAMES)
def test_templates_are_varied_and_rich(name):
    domain = get_domain(name)
    assert len(domain.templates) >= 15
    assert len({t.id for t in domain.templates}) == len(domain.templates)
    assert len({t.text for t in domain.templates}) == len(domain.templates)
    for template in domain.templates:
        labels = [FIELD_LABELS[field] for field in template.pii_fields]
        assert len(set(labels)) >= 3, template.id
        assert labels.count("PERSON") >= 2, template.id
        assert domain.canary_prefix.strip() not in template.text, template.id


def test_spans_match_generated_values(corpus):
    for record in plain_records(corpus):
        assert_spans_match_fields(corpus, record)


def test_span_invariants_hold(corpus):
    for record in corpus.train + corpus.test:
        assert_span_invariants(record, PII_LABELS | {SECRET_LABEL})


def test_every_template_is_used(corpus):
    used = {record.meta["template"] for record in plain_records(corpus)}
    assert used == {t.id for t in corpus.domain.templates}


def test_record_length_in_words(corpus):
    for record in plain_records(corpus):
        assert 40 <= len(record.text.split()) <= 120, record.id


def test_most_characters_are_not_sensitive(corpus):
    records = plain_records(corpus)
    total = sum(len(r.text) for r in records)
    sensitive = sum(s.end - s.start for r in records for s in r.spans)
    assert sensitive / total < 0.4


def test_no_person_value_outside_spans(corpus):
    for record in plain_records(corpus):
        masked = list(record.text)
        for span in record.spans:
            masked[span.start : span.end] = ["\0"] * (span.end - span.start)
        remainder = "".join(masked)
        values = corpus.person(record.meta["person_id"]).pii_values()
        for field in WHOLE_VALUE_FIELDS:
            assert values[field] not in remainder, f"{record.id}: unlabeled {field}"


def test_records_name_person_and_domain(corpus):
    prefix = corpus.domain.id_prefix
    for split, records in (("train", corpus.train), ("test", corpus.test)):
        plain = [r for r in records if r.canary_id is None]
        assert [r.id for r in plain] == [f"{prefix}-{split}-{i:06d}" for i in range(len(plain))]
        per_person = Counter(r.meta["person_id"] for r in plain)
        assert set(per_person) == {p.id for p in corpus.people[split]}
        assert all(1 <= count <= 3 for count in per_person.values())
        assert all(r.meta["domain"] == corpus.domain.name for r in records)


def test_splits_share_no_person_or_value(corpus):
    train_ids = {p.id for p in corpus.people["train"]}
    test_ids = {p.id for p in corpus.people["test"]}
    assert not train_ids & test_ids
    train_values = {v for p in corpus.people["train"] for v in p.pii_values().values()}
    test_values = {v for p in corpus.people["test"] for v in p.pii_values().values()}
    assert not train_values & test_values

    def span_texts(records: list[Record]) -> set[str]:
        return {r.text[s.start : s.end] for r in records for s in r.spans}

    assert not span_texts(corpus.train) & span_texts(corpus.test)


def test_test_values_absent_from_train_text(corpus):
    train_text = "\n".join(r.text for r in corpus.train)
    for person in corpus.people["test"]:
        values = person.pii_values()
        for field in WHOLE_VALUE_FIELDS:
            if values[field] not in train_text:
                continue
            # A bare substring may be part of a longer value, such as a zip inside a card number.
            pattern = rf"(?<!\w){re.escape(values[field])}(?!\w)"
            assert not re.search(pattern, train_text), f"{person.id}: {field} occurs in train"


def test_same_seed_gives_same_bytes(tmp_path):
    synthesize("customer_support", tmp_path / "a", n_train=40, n_test=10, seed=3)
    synthesize("customer_support", tmp_path / "b", n_train=40, n_test=10, seed=3)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_same_bytes_under_other_hash_seed(tmp_path):
    # str hashing is salted per process, so a set iterated in output order would differ here.
    synthesize("biographies", tmp_path / "local", n_train=40, n_test=10, seed=5)
    script = (
        "import sys; from pathlib import Path; from privft.data.synth import synthesize; "
        "synthesize('biographies', Path(sys.argv[1]), n_train=40, n_test=10, seed=5)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other_dir = tmp_path / "other"
    subprocess.run(
        [sys.executable, "-c", script, str(other_dir)], check=True, env=env, cwd=REPO_ROOT
    )
    for name in FILES:
        assert (tmp_path / "local" / name).read_bytes() == (other_dir / name).read_bytes()


def test_other_seed_gives_other_files(tmp_path):
    synthesize("biographies", tmp_path / "a", n_train=40, n_test=10, seed=1)
    synthesize("biographies", tmp_path / "b", n_train=40, n_test=10, seed=2)
    for name in ("train.jsonl", "test.jsonl", "canaries.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_canary_counts_per_repetition(corpus):
    by_count = Counter(c.repetitions for c in corpus.canaries)
    assert by_count == {1: 2, 4: 2, 16: 2, 0: 4}
    assert len({c.id for c in corpus.canaries}) == len(corpus.canaries)


def test_canaries_share_one_template(corpus):
    assert {c.prefix for c in corpus.canaries} == {corpus.domain.canary_prefix}
    assert {c.suffix for c in corpus.canaries} == {corpus.domain.canary_suffix}


def test_canary_secrets_are_distinct_digits(corpus):
    secrets = [c.secret for c in corpus.canaries]
    assert len(set(secrets)) == len(secrets)
    for secret in secrets:
        assert re.fullmatch(r"\d{6}", secret)


def test_canaries_inserted_as_planned(corpus):
    inserted = Counter(r.canary_id for r in corpus.train if r.canary_id is not None)
    train_text = "\n".join(r.text for r in corpus.train)
    for canary in corpus.canaries:
        assert inserted[canary.id] == canary.repetitions, canary.id
        assert train_text.count(canary.secret) == canary.repetitions, canary.id
    assert not any(r.canary_id for r in corpus.test)


def test_reference_canaries_absent(corpus):
    text = "\n".join(r.text for r in corpus.train + corpus.test)
    references = [c for c in corpus.canaries if c.repetitions == 0]
    assert references
    for canary in references:
        assert canary.secret not in text, canary.id


def test_insertions_are_shuffled_in(corpus):
    positions = [i for i, r in enumerate(corpus.train) if r.canary_id is not None]
    assert len(positions) == sum(c.repetitions for c in corpus.canaries)
    assert positions != list(range(len(corpus.train) - len(positions), len(corpus.train)))


def test_insertion_secret_span(corpus):
    canaries = {c.id: c for c in corpus.canaries}
    for record in corpus.train:
        if record.canary_id is None:
            continue
        canary = canaries[record.canary_id]
        assert record.text == canary.text
        assert re.fullmatch(rf"{canary.id}-r\d\d", record.id)
        assert len(record.spans) == 1
        span = record.spans[0]
        assert span.label == SECRET_LABEL
        assert record.text[span.start : span.end] == canary.secret
        assert span.start == len(canary.prefix)


def test_files_load_back(tmp_path):
    for name in DOMAIN_NAMES:
        manifest = synthesize(name, tmp_path / name, n_train=60, n_test=20, seed=11)
        dataset = load_dataset_dir(tmp_path / name)
        corpus = build_corpus(name, n_train=60, n_test=20, seed=11)
        assert dataset.train == corpus.train
        assert dataset.test == corpus.test
        assert dataset.canaries == corpus.canaries
        assert len(dataset.train_plain) == manifest.n_train == 60
        assert len(dataset.test) == manifest.n_test == 20


def test_manifest_plan_without_secrets(tmp_path):
    manifest = synthesize("customer_support", tmp_path, n_train=50, n_test=10, seed=4)
    canaries = load_dataset_dir(tmp_path).canaries
    written = (tmp_path / "manifest.json").read_text(encoding="utf-8")
    for canary in canaries:
        assert canary.secret not in written, canary.id
    assert manifest.insertions == {c.id: c.repetitions for c in canaries}
    assert manifest.n_canary_insertions == sum(c.repetitions for c in canaries)
    assert SynthManifest.from_json(json.loads(written)) == manifest
    assert manifest.domain == "customer_support"
    assert manifest.seed == 4


def test_log_contains_no_generated_text(tmp_path, caplog):
    caplog.set_level("DEBUG", logger="privft")
    synthesize("biographies", tmp_path, n_train=30, n_test=10, seed=9)
    dataset = load_dataset_dir(tmp_path)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged
    for canary in dataset.canaries:
        assert canary.secret not in logged
    for record in dataset.train + dataset.test:
        for span in record.spans:
            assert record.text[span.start : span.end] not in logged, record.id


@pytest.mark.parametrize(
    "arguments",
    [
        {"n_train": 0},
        {"n_test": -1},
        {"n_train": True},
        {"canary_repetitions": (0, 4)},
        {"canaries_per_repetition": -1},
        {"n_reference_canaries": 2.5},
        {"seed": "7"},
    ],
)
def test_invalid_arguments_raise(arguments):
    with pytest.raises(ValueError, match="must"):
        build_corpus("customer_support", **arguments)


def test_no_canaries_requested():
    corpus = build_corpus(
        "biographies", n_train=20, n_test=5, canary_repetitions=(), n_reference_canaries=0
    )
    assert corpus.canaries == []
    assert len(corpus.train) == 20


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(DOMAIN_NAMES),
    seed=st.integers(0, 2**32),
    n_train=st.integers(1, 60),
    n_test=st.integers(1, 15),
    repetitions=st.lists(st.integers(1, 5), max_size=3),
    per_repetition=st.integers(0, 2),
    n_reference=st.integers(0, 3),
)
def test_span_properties_for_any_seed(
    name, seed, n_train, n_test, repetitions, per_repetition, n_reference
):
    corpus = build_corpus(
        name,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        canary_repetitions=tuple(repetitions),
        canaries_per_repetition=per_repetition,
        n_reference_canaries=n_reference,
    )
    assert len([r for r in corpus.train if r.canary_id is None]) == n_train
    assert len(corpus.test) == n_test
    assert len(corpus.canaries) == len(repetitions) * per_repetition + n_reference
    for record in corpus.train + corpus.test:
        assert_span_invariants(record, PII_LABELS | {SECRET_LABEL})
    for record in plain_records(corpus):
        assert_spans_match_fields(corpus, record)
    train_values = {v for p in corpus.people["train"] for v in p.pii_values().values()}
    test_values = {v for p in corpus.people["test"] for v in p.pii_values().values()}
    assert not train_values & test_values
