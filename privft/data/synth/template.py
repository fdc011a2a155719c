"""Record templates rendered piece by piece, so each PII span is recorded as its value is placed.

A template is a ``str.format`` pattern whose placeholders name either a PII field of a Person
(``{name}``, ``{email}``, ...) or a filler field (``{product}``, ``{date}``, ...). Rendering never
searches the finished text: the offset of every PII value is noted when it is appended.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from privft.data.records import Span
from privft.data.synth.filler import FILLER_FIELDS

FIELD_LABELS: dict[str, str] = {
    "name": "PERSON",
    "first_name": "PERSON",
    "last_name": "PERSON",
    "email": "EMAIL",
    "phone": "PHONE",
    "address": "ADDRESS",
    "card": "CARD",
    "account": "CARD",
    "dob": "DOB",
    "dob_numeric": "DOB",
}
PII_LABELS = frozenset(FIELD_LABELS.values())

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Template:
    """A record pattern with an id (stored in each record's meta) and ``str.format`` text."""

    id: str
    text: str

    def __post_init__(self) -> None:
        for _, field, spec, conversion in _FORMATTER.parse(self.text):
            if field is None:
                continue
            if spec or conversion:
                raise ValueError(
                    f"template {self.id}: placeholder {{{field}}} must not have a "
                    "format spec or conversion"
                )
            if field not in FIELD_LABELS and field not in FILLER_FIELDS:
                raise ValueError(
                    f"template {self.id}: unknown placeholder {{{field}}}; use a "
                    "PII field from FIELD_LABELS or a filler field"
                )

    @property
    def fields(self) -> list[str]:
        """Placeholder names in order of appearance, repeats included."""
        return [field for _, field, _, _ in _FORMATTER.parse(self.text) if field is not None]

    @property
    def pii_fields(self) -> list[str]:
        """Placeholders that become spans, in order of appearance."""
        return [field for field in self.fields if field in FIELD_LABELS]

    def render(self, values: Mapping[str, str]) -> tuple[str, list[Span]]:
        """Fill every placeholder from `values` and return the text and its sorted PII spans.

        Raises:
            KeyError: a placeholder has no value.
            ValueError: a PII value is empty, which would make an empty span.
        """
        pieces: list[str] = []
        spans: list[Span] = []
        offset = 0
        for literal, field, _, _ in _FORMATTER.parse(self.text):
            pieces.append(literal)
            offset += len(literal)
            if field is None:
                continue
            value = values[field]
            label = FIELD_LABELS.get(field)
            if label is not None:
                if not value:
                    raise ValueError(f"template {self.id}: empty value for PII field {field}")
                spans.append(Span(offset, offset + len(value), label))
            pieces.append(value)
            offset += len(value)
        return "".join(pieces), spans
