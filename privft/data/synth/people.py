"""Synthetic persons with PII, drawn so that the train and test splits share no PII value.

Name tokens are split between the two splits by a fixed hash, so a first or last name of a test
person never occurs as a name in train. Every other value is checked against the persons already
drawn, and a candidate is redrawn on any collision.
"""

from __future__ import annotations

import datetime
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from faker import Faker

LOCALE = "en_US"
SPLITS = ("train", "test")
MAX_DRAW_ATTEMPTS = 1000

_BIRTH_START = datetime.date(1950, 1, 1)
_BIRTH_DAYS = (datetime.date(2003, 12, 31) - _BIRTH_START).days + 1
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_HANDLE_WORDS = (
    "blue", "river", "maple", "quiet", "sunny", "pixel", "falcon", "cedar", "lucky", "north",
    "copper", "velvet", "orbit", "meadow", "ember", "harbor",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    """A synthetic person and the PII values that templates may place in a record."""

    id: str
    first_name: str
    last_name: str
    gender: str
    email: str
    phone: str
    address: str
    card: str
    account: str
    dob: datetime.date

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def pii_values(self) -> dict[str, str]:
        """Map each PII template field to this person's text for it (two date formats)."""
        dob = self.dob
        return {
            "name": self.name,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "address": self.address,
            "card": self.card,
            "account": self.account,
            "dob": f"{MONTH_NAMES[dob.month - 1]} {dob.day}, {dob.year}",
            "dob_numeric": f"{dob.month:02d}/{dob.day:02d}/{dob.year}",
        }


def split_of_name(token: str) -> str:
    """Return the split that a name token belongs to; the assignment does not depend on the seed."""
    return SPLITS[zlib.crc32(token.encode("utf-8")) % len(SPLITS)]


def _draw_name_token(draw: Callable[[], str], split: str) -> str:
    for _ in range(MAX_DRAW_ATTEMPTS):
        token = draw()
        if split_of_name(token) == split:
            return token
    raise RuntimeError(
        f"Faker returned no name token of split {split!r} in {MAX_DRAW_ATTEMPTS} draws"
    )


def _draw_email(rng: random.Random, fake: Faker, first: str, last: str) -> str:
    first, last = first.lower(), last.lower()
    digits = rng.randrange(10, 100)
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{last}{digits}",
            f"{first}_{last[0]}{digits}",
            f"{last}.{first}",
            f"{rng.choice(_HANDLE_WORDS)}{rng.choice(_HANDLE_WORDS)}{digits}",
        )
    )
    return f"{local}@{fake.free_email_domain()}"


def _draw_person(rng: random.Random, fake: Faker, person_id: str, split: str) -> Person:
    gender = rng.choice(("female", "male"))
    draw_first = fake.first_name_female if gender == "female" else fake.first_name_male
    first = _draw_name_token(draw_first, split)
    last = _draw_name_token(fake.last_name, split)
    address = f"{fake.street_address()}, {fake.city()}, {fake.state_abbr()} {fake.postcode()}"
    return Person(
        id=person_id,
        first_name=first,
        last_name=last,
        gender=gender,
        email=_draw_email(rng, fake, first, last),
        # Faker's en_US numbers may end in an extension such as "x1157"; keep the line number.
        phone=fake.phone_number().split("x")[0],
        address=address,
        card=fake.credit_card_number(),
        account=fake.bban(),
        dob=_BIRTH_START + datetime.timedelta(days=rng.randrange(_BIRTH_DAYS)),
    )


def _is_new(values: dict[str, str], own: set[str], others: set[str]) -> bool:
    # Within a split, name tokens and birth dates may repeat. Across splits, no value may.
    identifying = {v for k, v in values.items() if k not in ("first_name", "last_name")}
    identifying -= {values["dob"], values["dob_numeric"]}
    return not identifying & own and not set(values.values()) & others


def _draw_new_person(
    rng: random.Random,
    fake: Faker,
    person_id: str,
    split: str,
    values_by_split: dict[str, set[str]],
) -> Person:
    others = set().union(*(v for s, v in values_by_split.items() if s != split))
    for _ in range(MAX_DRAW_ATTEMPTS):
        person = _draw_person(rng, fake, person_id, split)
        values = person.pii_values()
        if _is_new(values, values_by_split[split], others):
            values_by_split[split].update(values.values())
            return person
    raise RuntimeError(
        f"failed to draw {person_id}: {MAX_DRAW_ATTEMPTS} candidates each shared a PII value "
        "with an earlier person. Request fewer records."
    )


def draw_people(seed: int, counts: Mapping[str, int]) -> dict[str, list[Person]]:
    """Draw `counts[split]` distinct persons for each split in SPLITS, deterministically.

    Ids look like ``person-train-00017``. No PII value of one split equals a PII value of another.
    Within a split, full names, emails, phones, addresses, card and account numbers are unique.
    """
    fake = Faker(LOCALE)
    fake.seed_instance(f"people:{seed}")
    rng = random.Random(f"people:{seed}")
    values_by_split: dict[str, set[str]] = {split: set() for split in SPLITS}
    people: dict[str, list[Person]] = {}
    for split in SPLITS:
        people[split] = [
            _draw_new_person(rng, fake, f"person-{split}-{i:05d}", split, values_by_split)
            for i in range(counts[split])
        ]
    return people
