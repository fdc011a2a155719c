"""Data: JSONL records with sensitive spans, canaries, synthetic corpora and token labels."""

from privft.data.records import (
    Canary,
    DataError,
    Dataset,
    Record,
    Span,
    load_canaries,
    load_dataset_dir,
    load_records,
)

__all__ = [
    "Canary",
    "DataError",
    "Dataset",
    "Record",
    "Span",
    "load_canaries",
    "load_dataset_dir",
    "load_records",
]
