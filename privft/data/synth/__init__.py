"""Seeded synthetic corpora with ground-truth PII spans and canaries.

``synthesize(domain, out_dir)`` writes train.jsonl, test.jsonl, canaries.jsonl and manifest.json.
Spans carry the labels PERSON, EMAIL, PHONE, ADDRESS, CARD and DOB, plus SECRET on canary
insertions. Train and test persons share no PII value.
"""

from privft.data.synth.corpus import Corpus, build_corpus, synthesize
from privft.data.synth.domain import DOMAINS, Domain, get_domain
from privft.data.synth.manifest import SynthManifest
from privft.data.synth.template import PII_LABELS

__all__ = [
    "DOMAINS",
    "PII_LABELS",
    "Corpus",
    "Domain",
    "SynthManifest",
    "build_corpus",
    "get_domain",
    "synthesize",
]
