"""Each rank's share of a Poisson draw: disjoint shares whose union is a rate-q Poisson sample."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from privft.privacy.sampling import PoissonBatchSampler, ShuffledBatchSampler, rank_share

NUM_RECORDS = 200
SAMPLE_RATE = 0.05
STEPS = 2000
WORLD_SIZE = 3


def shares(drawn: list[int], world_size: int = WORLD_SIZE) -> list[list[int]]:
    return [rank_share(drawn, rank=rank, world_size=world_size) for rank in range(world_size)]


@pytest.fixture(scope="module")
def draws() -> list[list[int]]:
    sampler = PoissonBatchSampler(num_records=NUM_RECORDS, sample_rate=SAMPLE_RATE, seed=7)
    return [sampler.indices(step) for step in range(STEPS)]


def test_shares_are_disjoint(draws):
    overlaps = [
        step
        for step, drawn in enumerate(draws)
        if any(set(a) & set(b) for a, b in itertools.combinations(shares(drawn), 2))
    ]
    assert overlaps == []


def test_union_is_the_draw(draws):
    differing = [
        step
        for step, drawn in enumerate(draws)
        if sorted(i for share in shares(drawn) for i in share) != drawn
    ]
    assert differing == []


def test_share_sizes_differ_by_one_at_most(draws):
    spreads = {max(map(len, shares(d))) - min(map(len, shares(d))) for d in draws}
    assert spreads <= {0, 1}


def test_union_marginal_rate(draws):
    counts = torch.zeros(NUM_RECORDS)
    for drawn in draws:
        for share in shares(drawn):
            counts[share] += 1
    rates = counts / STEPS
    # Each record's inclusion count is Binomial(STEPS, q); 5 standard errors on the worst of 200.
    bound = 5 * math.sqrt(SAMPLE_RATE * (1 - SAMPLE_RATE) / STEPS)
    assert float((rates - SAMPLE_RATE).abs().max()) < bound


def test_union_mean_batch(draws):
    mean = sum(len(d) for d in draws) / STEPS
    bound = 5 * math.sqrt(NUM_RECORDS * SAMPLE_RATE * (1 - SAMPLE_RATE) / STEPS)
    assert abs(mean - NUM_RECORDS * SAMPLE_RATE) < bound


def test_every_rank_gets_records(draws):
    totals = [sum(len(shares(d)[rank]) for d in draws) for rank in range(WORLD_SIZE)]
    assert min(totals) > 0


def test_one_process_keeps_the_batch():
    sampler = ShuffledBatchSampler(num_records=10, batch_size=4, seed=0)
    assert rank_share(sampler.indices(1), rank=0, world_size=1) == sampler.indices(1)


def test_rank_outside_world_rejected():
    with pytest.raises(ValueError, match="outside"):
        rank_share([1, 2, 3], rank=2, world_size=2)
