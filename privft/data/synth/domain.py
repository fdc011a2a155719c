"""Registry of synthetic domains: templates, record id prefix and canary context per domain."""

from __future__ import annotations

from dataclasses import dataclass

from privft.data.synth import biographies, customer_support
from privft.data.synth.template import Template


@dataclass(frozen=True)
class Domain:
    """A kind of text to synthesize.

    All canaries of a domain share ``canary_prefix`` and ``canary_suffix``, so an evaluator can
    rank the whole secret space once per prefix.
    """

    name: str
    id_prefix: str
    templates: tuple[Template, ...]
    canary_prefix: str
    canary_suffix: str


DOMAINS: dict[str, Domain] = {
    "customer_support": Domain(
        name="customer_support",
        id_prefix=customer_support.ID_PREFIX,
        templates=customer_support.TEMPLATES,
        canary_prefix=customer_support.CANARY_PREFIX,
        canary_suffix=customer_support.CANARY_SUFFIX,
    ),
    "biographies": Domain(
        name="biographies",
        id_prefix=biographies.ID_PREFIX,
        templates=biographies.TEMPLATES,
        canary_prefix=biographies.CANARY_PREFIX,
        canary_suffix=biographies.CANARY_SUFFIX,
    ),
}


def get_domain(name: str) -> Domain:
    """Look up a domain by name, or raise ValueError naming the valid domains."""
    try:
        return DOMAINS[name]
    except KeyError:
        valid = ", ".join(sorted(DOMAINS))
        raise ValueError(f"unknown domain {name!r}; valid domains: {valid}") from None
