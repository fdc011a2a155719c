"""Canaries after Carlini et al., "The Secret Sharer" (USENIX Security 2019).

Each canary is the domain's fixed prefix, a 6-digit secret drawn uniformly from 000000-999999
and the domain's fixed suffix. A canary with ``repetitions`` k > 0 is inserted k times into the
training records; a reference canary (k = 0) is never inserted and gives the exposure baseline.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from privft.data.records import Canary, Record, Span
from privft.data.synth.domain import Domain

SECRET_LENGTH = 6
SECRET_SPACE = 10**SECRET_LENGTH
SECRET_LABEL = "SECRET"


def occupied_secrets(texts: Iterable[str]) -> set[str]:
    """Collect every string of SECRET_LENGTH consecutive digits in `texts`, e.g. in card numbers."""
    found: set[str] = set()
    for text in texts:
        for run in re.findall(rf"\d{{{SECRET_LENGTH},}}", text):
            found.update(run[i : i + SECRET_LENGTH] for i in range(len(run) - SECRET_LENGTH + 1))
    return found


def _draw_secrets(rng: random.Random, count: int, excluded: set[str]) -> list[str]:
    if count > SECRET_SPACE - len(excluded):
        raise ValueError(
            f"{count} canaries requested, but only {SECRET_SPACE - len(excluded)} "
            "distinct unused secrets remain; request fewer canaries"
        )
    secrets: list[str] = []
    unavailable = set(excluded)
    while len(secrets) < count:
        secret = f"{rng.randrange(SECRET_SPACE):0{SECRET_LENGTH}d}"
        if secret not in unavailable:
            unavailable.add(secret)
            secrets.append(secret)
    return secrets


def draw_canaries(
    rng: random.Random,
    domain: Domain,
    repetitions: Sequence[int],
    per_repetition: int,
    n_reference: int,
    excluded: set[str],
) -> list[Canary]:
    """Draw `per_repetition` canaries per count in `repetitions`, then `n_reference` references.

    Secrets are distinct and avoid `excluded`, so a secret occurs in the corpus only where its
    canary is inserted.
    NOTE: excluding the digit runs of the corpus (a few thousand of the 10^6 values at default
    sizes) makes secrets uniform over a slightly smaller set than the one an evaluator ranks.
    """
    plan = [count for count in repetitions for _ in range(per_repetition)] + [0] * n_reference
    width = max(2, len(str(len(plan) - 1)))
    secrets = _draw_secrets(rng, len(plan), excluded)
    return [
        Canary(
            f"canary-{index:0{width}d}", domain.canary_prefix, secret, domain.canary_suffix, count
        )
        for index, (count, secret) in enumerate(zip(plan, secrets, strict=True))
    ]


def insertion_records(canaries: Sequence[Canary], domain: Domain) -> list[Record]:
    """Make `repetitions` training records per canary, ids like ``canary-00-r03``.

    Each record's text is exactly ``canary.text`` and its one span, labeled SECRET, covers the
    secret.
    """
    max_repetitions = max((canary.repetitions for canary in canaries), default=0)
    width = max(2, len(str(max_repetitions - 1)))
    records: list[Record] = []
    for canary in canaries:
        start = len(canary.prefix)
        span = Span(start, start + len(canary.secret), SECRET_LABEL)
        meta = {"domain": domain.name, "canary_id": canary.id}
        records.extend(
            Record(f"{canary.id}-r{copy:0{width}d}", canary.text, [span], dict(meta))
            for copy in range(canary.repetitions)
        )
    return records
