"""Sensitive-token labels from character spans, through the tokenizer's offset mapping.

A token is sensitive when its character range overlaps a span. Overlap, not equal start, decides,
because byte-level BPE tokens often carry the leading space (" Dana" covers one character before
the name). Offsets, never substring search, decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from privft.data.records import Span


def overlapping_label(start: int, end: int, spans: Sequence[Span]) -> str | None:
    """Return the label of the first span that overlaps the token range ``[start, end)``.

    A zero-width range (some tokenizers give one to tokens they cannot place) counts as the
    single point ``start``, so a token inside a span stays sensitive instead of silently clean.
    """
    for span in spans:
        if start == end:
            if span.start <= start < span.end:
                return span.label
        elif start < span.end and span.start < end:
            return span.label
    return None


def token_labels(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str | None]:
    """Label each token with the kind of the span it overlaps, or None when it overlaps none."""
    return [overlapping_label(start, end, spans) for start, end in offsets]
