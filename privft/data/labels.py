"""Sensitive-token labels from character spans, through the tokenizer's offset mapping.

A token is sensitive when its character range overlaps a span, so a span that starts or ends
inside a token makes that token sensitive. Overlap, not equal start, decides, because byte-level
BPE tokens often carry the leading space (" Dana" covers one character before the name) and
SentencePiece tokens carry the "▁" that stands for it. Offsets, never substring search, decide.

Some tokens have zero-width or None offsets: lone spaces trimmed by GPT-2's ``trim_offsets``,
tokens a normalizer inserted, ``(0, 0)`` placeholders. Each is placed in the gap between the
previous and the next token that has a proper range:

- a non-empty gap ``[a, b)`` is used as the token's range;
- an empty gap is the point between two characters, and the token is sensitive only when both
  characters belong to the same span. So a token between a name's first and last name is
  sensitive, and a token just before or just after a span is not.

SentencePiece tokenizers (Llama-2, Gemma, T5) put a "▁" word marker in front of the text, and the
``tokenizers`` library aligns that inserted marker to the text's first character. When the token
strings are given, such an inserted marker counts as zero-width, so a span at the start of the
text does not claim it.

When no token has a proper range, or a span with visible characters overlaps no token, the
offsets cannot place the span, and ``TokenAlignmentError`` is raised instead of labelling
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from privft.data.records import Span


class TokenAlignmentError(ValueError):
    """The tokenizer's offsets cannot place the record's sensitive spans on its tokens."""


Offset = tuple[int, int] | None

# SentencePiece's stand-in for a space (U+2581, LOWER ONE EIGHTH BLOCK).
WORD_MARKER = "\u2581"


def overlapping_label(start: int, end: int, spans: Sequence[Span]) -> str | None:
    """Return the label of the first span that overlaps the range ``[start, end)``.

    An empty range is the point between characters ``start - 1`` and ``start``, which is inside
    a span only when both of those characters are.
    """
    for span in spans:
        if start == end:
            if span.start < start < span.end:
                return span.label
        elif start < span.end and span.start < end:
            return span.label
    return None


def _is_proper(offset: Offset, text_length: int | None) -> bool:
    if offset is None:
        return False
    start, end = offset
    if text_length is not None and end > text_length:
        return False
    return 0 <= start < end


def _is_inserted_marker(token: str, offset: Offset, following: Offset, text: str) -> bool:
    """Tell an inserted "▁" marker from one that stands for a space of the text.

    The inserted one is aligned to the text's first character: it covers a visible character,
    or it covers the text's own leading space together with the real marker that follows.
    """
    if offset is None or not token or token.strip(WORD_MARKER):
        return False
    start, end = offset
    if start >= end:
        return False
    return not text[start:end].isspace() or (following is not None and following[0] == start)


def token_ranges(
    offsets: Sequence[Offset], *, text_length: int | None = None
) -> list[tuple[int, int]]:
    """Give each token a character range, placing zero-width and missing ones in their gap.

    Raises ``TokenAlignmentError`` when the proper ranges run backwards (offsets relative to a
    word instead of the text) or go past the end of the text.
    """
    proper = [_is_proper(offset, text_length) for offset in offsets]
    previous_start, previous_end = 0, 0
    for offset, ok in zip(offsets, proper, strict=True):
        if offset is not None and text_length is not None and offset[1] > text_length:
            raise TokenAlignmentError(
                f"token offset {offset} ends past the text's {text_length} characters"
            )
        if not ok:
            continue
        # Byte-level tokens may share the one character whose bytes they split, so a proper
        # range may start one character before the previous token's end, but never earlier.
        if offset[0] < previous_start or offset[0] < previous_end - 1:
            raise TokenAlignmentError(
                f"token offsets run backwards ({offset} after a token ending at "
                f"{previous_end}); the tokenizer must return offsets into the whole text"
            )
        previous_start, previous_end = offset[0], max(previous_end, offset[1])

    ranges: list[tuple[int, int]] = []
    # next_start[i]: start of the first proper token at or after i (the text's end if none).
    end_of_text = text_length if text_length is not None else previous_end
    next_start = [end_of_text] * (len(offsets) + 1)
    for i in range(len(offsets) - 1, -1, -1):
        next_start[i] = offsets[i][0] if proper[i] else next_start[i + 1]  # type: ignore[index]
    previous_end = 0
    for i, offset in enumerate(offsets):
        if proper[i]:
            ranges.append((offset[0], offset[1]))  # type: ignore[index]
            previous_end = max(previous_end, offset[1])  # type: ignore[index]
        else:
            gap_end = max(previous_end, next_start[i + 1])
            ranges.append((previous_end, gap_end))
    return ranges


def placed_ranges(
    offsets: Sequence[Offset],
    *,
    text: str | None = None,
    tokens: Sequence[str] | None = None,
    record_id: str | None = None,
) -> list[tuple[int, int]]:
    """Compute every token's character range: markers dropped, zero-width ones placed.

    With ``text`` given, ``TokenAlignmentError`` is raised when no token has a proper range in
    a text with visible characters. ``tokens`` (the token strings) lets inserted SentencePiece
    markers be recognised, and ``record_id`` names the record in error messages.
    """
    where = f"record {record_id}: " if record_id is not None else ""
    if text is not None and tokens is not None:
        following = [*offsets[1:], None]
        offsets = [
            None if _is_inserted_marker(token, offset, after, text) else offset
            for token, offset, after in zip(tokens, offsets, following, strict=True)
        ]
    text_length = len(text) if text is not None else None
    if text is not None and text.strip() and offsets:
        if not any(_is_proper(offset, text_length) for offset in offsets):
            raise TokenAlignmentError(
                f"{where}all {len(offsets)} token offsets are zero-width or missing, so no "
                "token can be placed in the text; use a fast tokenizer whose tokenizer.json "
                "maps tokens to characters"
            )
    try:
        return token_ranges(offsets, text_length=text_length)
    except TokenAlignmentError as err:
        raise TokenAlignmentError(f"{where}{err}") from None


def span_tokens(ranges: Sequence[tuple[int, int]], span: Span) -> tuple[int, int] | None:
    """Return the first and last index of the tokens overlapping ``span``, or None."""
    hits = [i for i, (start, end) in enumerate(ranges) if overlapping_label(start, end, [span])]
    return (hits[0], hits[-1]) if hits else None


def token_labels(
    offsets: Sequence[Offset],
    spans: Sequence[Span],
    *,
    text: str | None = None,
    record_id: str | None = None,
    tokens: Sequence[str] | None = None,
) -> list[str | None]:
    """Label each token with the kind of the span it overlaps, or None when it overlaps none.

    With ``text`` given, offsets are checked against it (see ``placed_ranges``), and
    ``TokenAlignmentError`` is also raised when a span with visible characters overlaps no
    token. ``record_id`` names the record in those messages, and ``tokens`` (the token
    strings) lets inserted SentencePiece markers be recognised.
    """
    ranges = placed_ranges(offsets, text=text, tokens=tokens, record_id=record_id)
    labels = [overlapping_label(start, end, spans) for start, end in ranges]
    if text is not None:
        where = f"record {record_id}: " if record_id is not None else ""
        for span in spans:
            covered = any(start < span.end and span.start < end for start, end in ranges)
            if not covered and text[span.start : span.end].strip():
                raise TokenAlignmentError(
                    f"{where}span [{span.start}, {span.end}) ({span.label}) overlaps no "
                    "token; the tokenizer's offsets skip those characters"
                )
    return labels
