"""Non-sensitive filler values (products, jobs, dates, pronouns) drawn for each record.

None of these values is a PII kind, so templates mix them in to keep most characters of a record
outside any span. The lists are invented and contain no person names.
"""

from __future__ import annotations

import random

from privft.data.synth.people import MONTH_NAMES, Person

# Fixed so that generated ages and years do not depend on the day the generator runs.
REFERENCE_YEAR = 2025

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
STORES = (
    "Brightline", "Nimbus Home", "Kettle Street Goods", "Bluebarn Outfitters",
    "Sundial Electronics", "Maplewood Market", "Orbit Telecom", "Harbor and Pine",
    "Quillfeather Books", "Copperkettle Kitchens",
)  # fmt: skip
PRODUCTS = (
    "wireless headphones", "standing desk", "espresso machine", "rain jacket", "air fryer",
    "laptop stand", "running shoes", "smart thermostat", "cast iron skillet", "desk lamp",
    "hiking backpack", "bluetooth speaker", "winter coat", "blender", "robot vacuum",
    "electric kettle", "yoga mat", "office chair",
)  # fmt: skip
PLANS = ("Basic", "Plus", "Family", "Premium", "Student", "Unlimited")
JOBS = (
    "nurse", "civil engineer", "high school teacher", "accountant", "electrician",
    "graphic designer", "pharmacist", "software developer", "librarian", "dental hygienist",
    "architect", "chef", "paralegal", "physical therapist", "data analyst", "carpenter",
    "veterinarian", "insurance agent", "social worker", "urban planner", "lab technician",
    "translator",
)  # fmt: skip
EMPLOYERS = (
    "Riverbend Medical Center", "Greenfield Public Schools", "Northgate Logistics",
    "Summit Ridge Bank", "Clearwater Labs", "Oakhaven County Library", "Bright Harbor Studio",
    "Ironwood Construction", "Silverlake Pharmacy", "Meadowbrook Clinic", "Copperline Software",
    "Fairhaven Credit Union", "Stonebridge Architects", "Lakeshore Hotel Group",
    "Tidewater Transit Authority", "Foxglove Design Works",
)  # fmt: skip
SCHOOLS = (
    "Eastbrook State University", "Willow Creek College", "Granite Valley Community College",
    "Pinecrest University", "Saltmarsh Institute of Technology", "Hollow Oak College of Arts",
    "Northshore Polytechnic", "Red Mesa University",
)  # fmt: skip
HOBBIES = (
    "hiking", "birdwatching", "chess", "gardening", "rock climbing", "knitting", "photography",
    "cycling", "pottery", "woodworking", "swimming", "trail running", "sailing", "painting",
    "board games", "baking",
)  # fmt: skip
PRONOUNS = {
    "female": {"subj": "she", "obj": "her", "poss": "her"},
    "male": {"subj": "he", "obj": "him", "poss": "his"},
}

FILLER_FIELDS = frozenset(
    {
        "store", "product", "plan", "order", "ticket", "amount", "date", "month", "weekday",
        "time", "days", "job", "a_job", "Job", "employer", "school", "grad_year", "join_year",
        "years", "hobby", "subj", "obj", "poss", "Subj", "Poss",
    }
)  # fmt: skip


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _draw_commerce(rng: random.Random) -> dict[str, str]:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
    hour, minute = rng.randint(8, 19), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50))
    return {
        "store": rng.choice(STORES),
        "product": rng.choice(PRODUCTS),
        "plan": rng.choice(PLANS),
        "order": f"{letters}-{rng.randrange(10_000, 100_000)}",
        "ticket": f"CS-{rng.randrange(10_000, 100_000)}",
        "amount": f"${rng.randint(5, 480)}.{rng.choice(('00', '49', '95', '99'))}",
        "date": f"{rng.choice(MONTH_NAMES)} {rng.randint(1, 28)}",
        "month": rng.choice(MONTH_NAMES),
        "weekday": rng.choice(WEEKDAYS),
        "time": f"{(hour - 1) % 12 + 1}:{minute:02d} {'am' if hour < 12 else 'pm'}",
        "days": str(rng.randint(2, 10)),
    }


def _draw_career(rng: random.Random, person: Person) -> dict[str, str]:
    job = rng.choice(JOBS)
    adult_year = person.dob.year + 18
    return {
        "job": job,
        "a_job": f"{_article(job)} {job}",
        "Job": job[0].upper() + job[1:],
        "employer": rng.choice(EMPLOYERS),
        "school": rng.choice(SCHOOLS),
        "grad_year": str(min(adult_year + rng.randint(3, 6), REFERENCE_YEAR - 1)),
        "join_year": str(rng.randint(min(max(adult_year, 1990), REFERENCE_YEAR - 1), 2024)),
        "years": str(rng.randint(2, max(2, min(25, REFERENCE_YEAR - adult_year)))),
        "hobby": rng.choice(HOBBIES),
    }


def draw_filler(rng: random.Random, person: Person) -> dict[str, str]:
    """Draw one value for every field in FILLER_FIELDS; years and pronouns follow `person`."""
    pronouns = PRONOUNS[person.gender]
    capitalized = {"Subj": pronouns["subj"].capitalize(), "Poss": pronouns["poss"].capitalize()}
    return {**_draw_commerce(rng), **_draw_career(rng, person), **pronouns, **capitalized}
