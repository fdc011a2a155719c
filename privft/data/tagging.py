"""Tag pattern-like PII in records that come without spans.

privft measures memorization of sensitive tokens, so it needs to know which characters are
sensitive. User data often comes without that markup. The built-in tagger finds the kinds of
PII that have a recognizable shape:

| label | what | checked |
| --- | --- | --- |
| EMAIL | ``name@domain.tld`` | - |
| CARD | 13 to 19 digits, grouped by spaces or hyphens or not | Luhn checksum |
| ACCOUNT | IBANs; digits right after "account", "acct" or "a/c" | IBAN mod-97 checksum |
| PHONE | ``+44 20 7946 0958``, ``(555) 013-4221``, ``555.013.4221`` | 7 to 15 digits |
| DATE | ``1984-03-12``, ``12/03/1984``, ``12 March 1984``, ``March 12, 1984`` | a real day |
| POSTAL_CODE | UK and Canadian postcodes, US ZIP+4, a ZIP after a state or "ZIP" | - |

Names, street addresses and other free-form PII have no such shape. Tag them with an NER model
(Presidio with a spaCy model, ``engine="presidio"``) or by hand. A bare number is never tagged
on its shape alone: order counts, amounts and ids stay untagged unless a keyword says what they
are ("account 12345678", "ZIP 62704").

Tagging keeps the spans a record already has and adds only spans that overlap none of them, so
the result is sorted and non-overlapping, as ``load_records`` requires.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from privft.data.records import Record, Span, load_records, write_records

ENGINES = ("builtin", "presidio")
PRESIDIO_INSTALL = 'pip install "privft[presidio]"'


class TaggingError(ValueError):
    """A tagger could not run; the message names the fix."""


# Patterns ------------------------------------------------------------------------------------
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "(?P<month_name>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w@-])"
)
CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w])")
ACCOUNT_KEYWORD = re.compile(
    r"\b(?:account|acct|a/c)(?:\s+(?:number|no\.?|num|#))?\s*[:#]?\s*(?P<value>\d[\d -]{4,20}\d)"
    r"(?![\w-]|[.,]\d)",
    re.IGNORECASE,
)
PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])"
    r"\d{2,4}(?:[ .-]\d{2,4}){0,2}(?![\w-]|[.,]\d)"
)
PHONE_KEYWORD = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell)(?:\s+(?:number|no\.?))?\s*[:#]?\s*"
    r"(?P<value>\+?\d{7,15})(?![\w-]|[.,]\d)",
    re.IGNORECASE,
)
DATE_NUMERIC = re.compile(
    r"(?<![\w./-])(?:(?P<iso_y>\d{4})-(?P<iso_m>\d{1,2})-(?P<iso_d>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2}))(?![\w/-]|\.\d)"
)
DATE_WORDS = re.compile(
    rf"(?<![\w])(?:(?P<day_first>\d{{1,2}}){_ORDINAL}\s+{_MONTH}(?:,)?\s+(?P<year_a>\d{{4}})"
    rf"|{_MONTH.replace('month_name', 'month_name2')}\s+(?P<day_after>\d{{1,2}}){_ORDINAL},?\s+"
    r"(?P<year_b>\d{4}))(?![\w])",
    re.IGNORECASE,
)
US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split()
POSTAL = re.compile(
    r"(?<![\w])(?:(?P<uk>[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})|(?P<ca>[A-Z]\d[A-Z] ?\d[A-Z]\d)"
    r"|(?P<zip4>\d{5}-\d{4}))(?![\w-])"
)
ZIP_CONTEXT = re.compile(
    r"(?:\b(?-i:" + "|".join(US_STATES) + r")\s+|\b(?:zip|zip code|postal code|postcode)\s*:?\s*)"
    r"(?P<value>\d{5})(?![\w-])",
    re.IGNORECASE,
)


def luhn_valid(digits: str) -> bool:
    """Return True if the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(value: str) -> bool:
    """Return True if an IBAN (spaces allowed) passes its ISO 13616 mod-97 check."""
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rotated)
    return int(number) % 97 == 1


def _valid_day(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= 30 if month in (4, 6, 9, 11) else True


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# Finders: each yields (start, end) of its kind ------------------------------------------------
def _emails(text: str) -> Iterable[tuple[int, int]]:
    for match in EMAIL.finditer(text):
        yield match.span()


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for match in CARD.finditer(text):
        value = match.group()
        separators = set(re.sub(r"\d", "", value))
        # One kind of separator at most: "4111 1111-1111 1111" is not how cards are written.
        if len(separators) <= 1 and 13 <= len(_digits(value)) <= 19 and luhn_valid(_digits(value)):
            yield match.span()


def _accounts(text: str) -> Iterable[tuple[int, int]]:
    for match in IBAN.finditer(text):
        if iban_valid(match.group()):
            yield match.span()
    for match in ACCOUNT_KEYWORD.finditer(text):
        yield match.span("value")


def _phones(text: str) -> Iterable[tuple[int, int]]:
    for match in PHONE.finditer(text):
        value = match.group()
        count = len(_digits(value))
        if value.startswith("+") or "(" in value:
            marked = 7 <= count <= 15
        else:
            # Bare digit groups must look like a phone number, not "12 500 000 people": three
            # groups or more, the last of four digits.
            groups = re.split(r"[ .-]", value)
            marked = len(groups) >= 3 and len(groups[-1]) == 4 and 9 <= count <= 15
        if marked:
            yield match.span()
    for match in PHONE_KEYWORD.finditer(text):
        yield match.span("value")


def _dates(text: str) -> Iterable[tuple[int, int]]:
    for match in DATE_NUMERIC.finditer(text):
        if match.group("iso_y"):
            year, month, day = (int(match.group(k)) for k in ("iso_y", "iso_m", "iso_d"))
            if _valid_day(year, month, day):
                yield match.span()
            continue
        a, b, year = int(match.group("a")), int(match.group("b")), int(match.group("y"))
        # Day-first (12/03/1984) or month-first (03/12/1984): either reading must be a date.
        if _valid_day(year, b, a) or _valid_day(year, a, b):
            yield match.span()
    for match in DATE_WORDS.finditer(text):
        month = _MONTHS[(match.group("month_name") or match.group("month_name2")).lower()]
        day = int(match.group("day_first") or match.group("day_after"))
        year = int(match.group("year_a") or match.group("year_b"))
        if _valid_day(year, month, day):
            yield match.span()


def _postal_codes(text: str) -> Iterable[tuple[int, int]]:
    for match in POSTAL.finditer(text):
        yield match.span()
    for match in ZIP_CONTEXT.finditer(text):
        yield match.span("value")


# In priority order: where two kinds claim overlapping text, the earlier kind keeps it.
FINDERS: tuple[tuple[str, Callable[[str], Iterable[tuple[int, int]]]], ...] = (
    ("EMAIL", _emails),
    ("CARD", _cards),
    ("ACCOUNT", _accounts),
    ("DATE", _dates),
    ("PHONE", _phones),
    ("POSTAL_CODE", _postal_codes),
)
BUILTIN_LABELS = tuple(label for label, _ in FINDERS)


def _add_without_overlap(kept: list[Span], candidates: Iterable[Span]) -> list[Span]:
    """Add candidates, in order, that overlap nothing kept so far; return all sorted by start."""
    taken = list(kept)
    for span in candidates:
        if all(span.end <= other.start or span.start >= other.end for other in taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def tag_text(text: str) -> list[Span]:
    """Find pattern-like PII in ``text``; return sorted, non-overlapping spans."""
    candidates = []
    for label, finder in FINDERS:
        # Within a kind, longer matches first: "+44 20 7946 0958" beats a part of it.
        found = sorted(set(finder(text)), key=lambda s: (s[0] - s[1], s[0]))
        candidates += [Span(start, end, label) for start, end in found]
    return _add_without_overlap([], candidates)


# Presidio -----------------------------------------------------------------------------------
PRESIDIO_LABELS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "ACCOUNT",
    "US_BANK_NUMBER": "ACCOUNT",
    "DATE_TIME": "DATE",
    "PERSON": "PERSON",
    "LOCATION": "ADDRESS",
}


@dataclass
class PresidioTagger:
    """Presidio's recognizers on a spaCy pipeline, offline.

    ``spacy_model`` names an installed spaCy model (for example ``en_core_web_sm``, which adds
    NER for PERSON and LOCATION); None uses a blank English pipeline, which needs no download
    and runs only Presidio's pattern recognizers. Results below ``threshold`` are dropped.
    """

    spacy_model: str | None = None
    threshold: float = 0.5
    language: str = "en"

    def __post_init__(self) -> None:
        missing = [m for m in ("presidio_analyzer", "spacy") if importlib.util.find_spec(m) is None]
        if missing:
            raise TaggingError(
                f"the presidio engine needs {' and '.join(missing)}, which is not installed; "
                f"install it with `{PRESIDIO_INSTALL}`, or use --engine builtin"
            )
        self.analyzer = _presidio_analyzer(self.spacy_model, self.language)

    def __call__(self, text: str) -> list[Span]:
        results = self.analyzer.analyze(text=text, language=self.language)
        ranked = sorted(
            (r for r in results if r.score >= self.threshold),
            key=lambda r: (-r.score, r.start - r.end, r.start),
        )
        spans = [
            Span(r.start, r.end, PRESIDIO_LABELS.get(r.entity_type, r.entity_type))
            for r in ranked
            if r.end > r.start
        ]
        return _add_without_overlap([], spans)


def _presidio_analyzer(spacy_model: str | None, language: str):
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # Presidio's email check looks up the domain's suffix with tldextract, which downloads the
    # public suffix list on first use. This extractor reads the list bundled with tldextract.
    offline_suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_suffixes(pattern_text).fqdn != ""

    engine = SpacyNlpEngine(models=[{"lang_code": language, "model_name": spacy_model or "blank"}])
    if spacy_model is None:
        engine.nlp = {language: spacy.blank(language)}
    else:
        if not spacy.util.is_package(spacy_model) and not Path(spacy_model).exists():
            raise TaggingError(
                f"spaCy model {spacy_model!r} is not installed and privft does not download "
                "models; install its package, or leave --spacy-model unset for a blank pipeline"
            )
        engine.nlp = {language: spacy.load(spacy_model)}
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language], nlp_engine=engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer(supported_language=language))
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=[language])


# Records and files ---------------------------------------------------------------------------
def make_tagger(engine: str = "builtin", **options) -> Callable[[str], list[Span]]:
    """Return a function from text to spans for ``engine`` (``builtin`` or ``presidio``)."""
    if engine == "builtin":
        if options:
            raise TaggingError(f"the builtin engine takes no options, got {sorted(options)}")
        return tag_text
    if engine == "presidio":
        return PresidioTagger(**options)
    raise TaggingError(f"unknown tagging engine {engine!r}; valid: {', '.join(ENGINES)}")


def tag_records(
    records: Sequence[Record], tagger: Callable[[str], list[Span]] = tag_text
) -> tuple[list[Record], Counter]:
    """Add found spans to each record's own; return the records and the count per label added."""
    added: Counter = Counter()
    tagged = []
    for record in records:
        kept = _add_without_overlap(record.spans, tagger(record.text))
        for span in kept:
            if span not in record.spans:
                added[span.label] += 1
        tagged.append(replace(record, spans=kept))
    return tagged, added


def tag_file(source: Path, out: Path, *, engine: str = "builtin", **options) -> tuple[int, Counter]:
    """Tag a JSONL file of records into ``out``; return the record count and spans added per
    label. Records without a ``spans`` field are read as having none."""
    records = load_records(Path(source))
    tagged, added = tag_records(records, make_tagger(engine, **options))
    write_records(Path(out), tagged)
    return len(tagged), added
