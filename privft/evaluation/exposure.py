"""Canary exposure (Carlini et al., "The Secret Sharer", 2019).

exposure = log2 |R| - log2 rank, where rank is the inserted secret's position among all
candidates of the secret space R ordered by the model's log-perplexity of the secret given the
template prefix (rank 1 = most likely). Log-perplexity here is the secret's own tokens' NLL sum;
the prefix is shared by all candidates and the suffix is left out.

The secret is scored after the tokenizer's start token and the prefix, the context the canary
had in training (``encode_records`` puts the start token before every record).

Three methods:

- ``exact`` enumerates R. When every character of the alphabet is a single token, R is a prefix
  tree: privft runs the shared template once, caches its keys and values, scores all
  |A|^(L-2) paths of depth L-2 as batched continuations of that cache, then expands each of
  those caches |A| times for the last-but-one character. A 6-digit space then costs about 1.1e5
  single-token steps instead of 6e6.
- ``sampled`` interpolates: rank = 1 + (|R| - 1) x the share of random candidates that are more
  likely than the secret. It cannot resolve ranks below about |R| / samples, so its exposure
  saturates near log2(samples).
- ``skewnorm`` extrapolates, following the approximation section of Carlini et al.: it fits a
  skew-normal distribution (scipy.stats.skewnorm) to the random candidates' log-perplexities
  and takes rank = |R| x CDF(secret's log-perplexity), clipped to [1, |R|]. It resolves
  exposures beyond log2(samples), as far as the fitted tail matches the real one.

``auto`` is exact where the tokenizer allows it and sampled elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import skewnorm
from transformers import DynamicCache
from transformers import PreTrainedTokenizerBase as Tokenizer

from privft.data.encoding import start_token_id
from privft.data.labels import token_labels
from privft.data.records import Canary, Span

# Continuations scored per forward pass in the last stage of the enumeration.
MAX_BATCH = 4096


@dataclass
class ExposureResult:
    """Exposure of one canary."""

    canary_id: str
    repetitions: int
    rank: float
    space_size: int
    exposure: float
    method: str
    log_perplexity: float | None = None  # nats, the secret's NLL sum given the prefix
    samples: int | None = None  # random candidates behind a sampled or skewnorm estimate

    def to_json(self) -> dict:
        return {
            "id": self.canary_id,
            "repetitions": self.repetitions,
            "rank": self.rank,
            "space_size": self.space_size,
            "exposure": self.exposure,
            "method": self.method,
            "log_perplexity": self.log_perplexity,
            "samples": self.samples,
        }


def _log_softmax_at(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Log-softmax of ``logits`` at ``token_ids`` only; cheaper than the full log-softmax."""
    logits = logits.float()
    return logits[..., token_ids] - torch.logsumexp(logits, dim=-1, keepdim=True)


def _expand_cache(cache: DynamicCache, batch: int, config) -> DynamicCache:
    layers = [
        (
            layer.keys.expand(batch, -1, -1, -1).contiguous(),
            layer.values.expand(batch, -1, -1, -1).contiguous(),
        )
        for layer in cache.layers
    ]
    return DynamicCache(ddp_cache_data=layers, config=config)


def _all_strings(alphabet_size: int, length: int) -> torch.Tensor:
    """Return all index strings of ``length`` in lexicographic order, shape [A^length, length]."""
    if length == 0:
        return torch.zeros((1, 0), dtype=torch.long)
    grids = torch.cartesian_prod(*[torch.arange(alphabet_size)] * length)
    return grids.reshape(-1, length)


@torch.no_grad()
def enumerate_log_perplexity(
    model: torch.nn.Module,
    prefix_ids: Sequence[int],
    char_token_ids: Sequence[int],
    length: int,
    *,
    progress=None,
) -> np.ndarray:
    """Log-perplexity (nats) of every secret of the space, indexed by its base-|A| value.

    Requires that each alphabet character is one token and that tokenizing prefix + secret
    gives the prefix's tokens followed by one token per character.
    """
    model.eval()
    device = next(model.parameters()).device
    chars = torch.tensor(list(char_token_ids), device=device)
    size = len(chars)
    prefix = torch.tensor([list(prefix_ids)], device=device)
    out = model(input_ids=prefix, use_cache=True)
    first = -_log_softmax_at(out.logits[0, -1], chars).double().cpu()  # [A]
    if length == 1:
        return first.numpy()

    # 1. Paths of depth m = length - 2, scored as continuations of the prefix cache.
    m = length - 2
    paths = _all_strings(size, m)  # [A^m, m]
    per_chunk = max(1, MAX_BATCH // size)
    scores = np.empty(size**length, dtype=np.float64)
    for start in range(0, len(paths), per_chunk):
        chunk = paths[start : start + per_chunk]
        n = len(chunk)
        # NLL of the path's own characters and the log-probs of the next character: [n, A].
        head = first[chunk[:, 0]] if m else torch.zeros(1, dtype=torch.float64)
        if m:
            cache = _expand_cache(out.cache, n, model.config)
            positions = torch.arange(prefix.shape[1], prefix.shape[1] + m, device=device)
            step = model(
                input_ids=chars[chunk.to(device)],
                cache=cache,
                use_cache=True,
                position_ids=positions.repeat(n, 1),
            )
            logp = _log_softmax_at(step.logits, chars).double().cpu()  # [n, m, A]
            inner = -logp[:, :-1].gather(2, chunk[:, 1:].unsqueeze(-1)).squeeze(-1).sum(1)
            head = head + inner
            next_nll = -logp[:, -1]
            cache = step.cache
        else:
            next_nll = first.unsqueeze(0)
            cache = _expand_cache(out.cache, 1, model.config)

        # 2. Expand each path by every character and score the last character.
        cache.batch_repeat_interleave(size)
        last_chars = chars.repeat(n).unsqueeze(1)  # [n*A, 1]
        position = torch.full((n * size, 1), prefix.shape[1] + m, device=device)
        final = model(input_ids=last_chars, cache=cache, use_cache=False, position_ids=position)
        last_nll = -_log_softmax_at(final.logits[:, -1], chars).double().cpu()  # [n*A, A]
        total = head[:, None, None] + next_nll[:, :, None] + last_nll.reshape(n, size, size)
        offset = start * size * size
        scores[offset : offset + n * size * size] = total.reshape(-1).numpy()
        if progress is not None:
            progress.update(n)
    return scores


def secret_index(secret: str, alphabet: str) -> int:
    value = 0
    for char in secret:
        value = value * len(alphabet) + alphabet.index(char)
    return value


def rank_of(scores: np.ndarray, target: int, excluded: Sequence[int] = ()) -> tuple[float, int]:
    """Rank of ``scores[target]`` (lower is more likely) and the size of the candidate set.

    Ties count half, and ``excluded`` candidates (secrets of other inserted canaries that share
    the template) are left out so they cannot push this canary's rank down.
    """
    mask = np.ones(len(scores), dtype=bool)
    mask[list(excluded)] = False
    mask[target] = False
    others = scores[mask]
    value = scores[target]
    rank = 1.0 + float((others < value).sum()) + 0.5 * float((others == value).sum())
    return rank, int(mask.sum()) + 1


def exposure_from_rank(rank: float, space_size: int) -> float:
    return math.log2(space_size) - math.log2(rank)


def digit_tokens(tokenizer: Tokenizer, canaries: Sequence[Canary]) -> list[int] | None:
    """Token id of each alphabet character if the space is a prefix tree of single tokens."""
    alphabet = canaries[0].alphabet
    ids = [tokenizer.encode(c, add_special_tokens=False) for c in alphabet]
    if any(len(i) != 1 for i in ids):
        return None
    char_ids = [i[0] for i in ids]
    for canary in canaries:
        prefix = tokenizer.encode(canary.prefix, add_special_tokens=False)
        full = tokenizer.encode(canary.prefix + canary.secret, add_special_tokens=False)
        expected = prefix + [char_ids[alphabet.index(c)] for c in canary.secret]
        if full != expected:
            return None
    return char_ids


@torch.no_grad()
def sampled_log_perplexity(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prefix: str,
    secrets: Sequence[str],
    *,
    batch_size: int = 128,
) -> np.ndarray:
    """Log-perplexity (nats) of each secret after the start token and ``prefix``.

    Teacher-forces each full text. The secret's tokens are found through the offset mapping,
    so a token that joins the prefix's last characters to the secret's first ones counts too.
    """
    model.eval()
    device = next(model.parameters()).device
    start_id = start_token_id(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start_id
    texts = [prefix + secret for secret in secrets]
    encodings = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    values = []
    for start in range(0, len(texts), batch_size):
        rows = range(start, min(start + batch_size, len(texts)))
        encoded = [[start_id, *encodings["input_ids"][i]] for i in rows]
        # in_secret[j] marks token j of the row (after the start token) as part of the secret.
        in_secret = [
            [False]
            + [
                label is not None
                for label in token_labels(
                    encodings["offset_mapping"][i],
                    [Span(len(prefix), len(texts[i]), "SECRET")],
                    text=texts[i],
                )
            ]
            for i in rows
        ]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros((len(encoded), width - 1), dtype=torch.bool)
        for row, (e, marks) in enumerate(zip(encoded, in_secret, strict=True)):
            ids[row, : len(e)] = torch.tensor(e)
            mask[row, : len(e)] = 1
            target[row, : len(e) - 1] = torch.tensor(marks[1:])
        positions = torch.arange(width).repeat(len(encoded), 1)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
        ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None].to(device))
        logp = logp.squeeze(-1).cpu()
        values.extend((-(logp * target).sum(1)).double().tolist())
    return np.array(values)


def _random_secrets(alphabet: str, length: int, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(alphabet), size=(count, length))
    return ["".join(alphabet[i] for i in row) for row in picks]


def skewnorm_rank(candidate_scores: np.ndarray, value: float, space_size: int) -> float:
    """Estimate the rank of ``value`` among ``space_size`` candidates from a skew-normal fit.

    rank = |R| x CDF(value), clipped to [1, |R|], so a lower log-perplexity gives a better rank.
    """
    shape, location, scale = skewnorm.fit(candidate_scores)
    share = float(np.exp(skewnorm.logcdf(value, shape, location, scale)))
    return min(float(space_size), max(1.0, share * space_size))


def interpolated_rank(candidate_scores: np.ndarray, value: float, space_size: int) -> float:
    """Estimate the rank of ``value`` as 1 + (|R| - 1) x the share of more likely candidates.

    Tied candidates count half.
    """
    share = float((candidate_scores < value).mean() + 0.5 * (candidate_scores == value).mean())
    return max(1.0, 1.0 + share * (space_size - 1))


def _exact_exposures(
    model, tokenizer, group: list[Canary], char_ids: list[int], progress=None
) -> list[ExposureResult]:
    alphabet, length = group[0].alphabet, len(group[0].secret)
    inserted = [secret_index(c.secret, alphabet) for c in group if c.repetitions > 0]
    prefix_ids = [
        start_token_id(tokenizer),
        *tokenizer.encode(group[0].prefix, add_special_tokens=False),
    ]
    scores = enumerate_log_perplexity(model, prefix_ids, char_ids, length, progress=progress)
    results = []
    for canary in group:
        target = secret_index(canary.secret, alphabet)
        rank, size = rank_of(scores, target, [i for i in inserted if i != target])
        results.append(
            ExposureResult(
                canary.id,
                canary.repetitions,
                rank,
                size,
                exposure_from_rank(rank, size),
                "exact",
                log_perplexity=float(scores[target]),
            )
        )
    return results


def _estimated_exposures(
    model, tokenizer, group: list[Canary], *, method: str, samples: int, seed: int
) -> list[ExposureResult]:
    alphabet, length = group[0].alphabet, len(group[0].secret)
    space = len(alphabet) ** length
    # Inserted secrets are left out of the candidates, as the exact ranks leave them out.
    inserted = {c.secret for c in group if c.repetitions > 0}
    candidates = [
        secret
        for secret in _random_secrets(alphabet, length, samples, seed)
        if secret not in inserted
    ]
    prefix = group[0].prefix
    candidate_scores = sampled_log_perplexity(model, tokenizer, prefix, candidates)
    own = sampled_log_perplexity(model, tokenizer, prefix, [c.secret for c in group])
    results = []
    for canary, value in zip(group, own, strict=True):
        if method == "skewnorm":
            rank = skewnorm_rank(candidate_scores, float(value), space)
        else:
            rank = interpolated_rank(candidate_scores, float(value), space)
        results.append(
            ExposureResult(
                canary.id,
                canary.repetitions,
                rank,
                space,
                exposure_from_rank(rank, space),
                method,
                log_perplexity=float(value),
                samples=len(candidates),
            )
        )
    return results


def _group_exposures(
    model, tokenizer, group: list[Canary], *, method: str, samples: int, seed: int, progress=None
) -> list[ExposureResult]:
    char_ids = digit_tokens(tokenizer, group) if method in ("exact", "auto") else None
    if method == "exact" and char_ids is None:
        raise ValueError(
            "exact exposure needs a tokenizer that encodes each secret character "
            "as one token after the template; use method 'sampled', 'skewnorm' or 'auto'"
        )
    if char_ids is not None:
        return _exact_exposures(model, tokenizer, group, char_ids, progress=progress)
    estimate = "sampled" if method == "auto" else method
    return _estimated_exposures(
        model, tokenizer, group, method=estimate, samples=samples, seed=seed
    )


EXPOSURE_METHODS = ("auto", "exact", "sampled", "skewnorm")


def exposure_report(
    model,
    tokenizer,
    canaries: Sequence[Canary],
    *,
    method: str = "auto",
    samples: int = 5000,
    seed: int = 0,
    progress=None,
) -> dict:
    """Exposure of every canary, grouped by shared template, with means per repetition count.

    ``method`` is ``exact`` (enumerate the space), ``sampled`` (interpolate among ``samples``
    random candidates), ``skewnorm`` (extrapolate from a skew-normal fit to them) or ``auto``
    (exact where the tokenizer allows it, else sampled). Reference canaries (0 repetitions)
    are the control: their exposure is what an unseen secret gets.
    """
    if method not in EXPOSURE_METHODS:
        raise ValueError(
            f"exposure method {method!r} is unknown; valid: {', '.join(EXPOSURE_METHODS)}"
        )
    groups: dict[tuple[str, str, int], list[Canary]] = {}
    for canary in canaries:
        groups.setdefault((canary.prefix, canary.alphabet, len(canary.secret)), []).append(canary)
    results = []
    for group in groups.values():
        results += _group_exposures(
            model, tokenizer, group, method=method, samples=samples, seed=seed, progress=progress
        )
    by_reps: dict[int, list[float]] = {}
    for result in results:
        by_reps.setdefault(result.repetitions, []).append(result.exposure)
    means = {str(k): float(np.mean(v)) for k, v in sorted(by_reps.items())}
    reference = means.get("0")
    return {
        "canaries": [r.to_json() for r in results],
        "mean_by_repetitions": means,
        "max_exposure": {str(k): float(np.max(v)) for k, v in sorted(by_reps.items())},
        "count_by_repetitions": {str(k): len(v) for k, v in sorted(by_reps.items())},
        # Mean exposure of each inserted bucket minus that of the never-inserted references.
        "excess_over_reference": {
            k: v - reference for k, v in means.items() if k != "0" and reference is not None
        },
        "methods": sorted({r.method for r in results}),
    }


def enumeration_steps(canaries: Sequence[Canary], tokenizer: Tokenizer) -> int:
    """Progress units (depth-(L-2) paths) that ``exposure_report`` will enumerate."""
    groups = {(c.prefix, c.alphabet, len(c.secret)) for c in canaries}
    return sum(len(a) ** max(0, n - 2) for _, a, n in groups)
