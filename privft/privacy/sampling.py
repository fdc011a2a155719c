"""Poisson sampling of logical batches, reproducible step by step, and their split over ranks."""

from __future__ import annotations

import hashlib

import torch


def step_seed(seed: int, step: int, stream: str) -> int:
    """Derive an independent 63-bit seed for one step and one random stream."""
    digest = hashlib.sha256(f"{seed}:{step}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class PoissonBatchSampler:
    """Draw each logical batch by including every record independently with ``sample_rate``.

    This is the sampling that the subsampled Gaussian accountants assume (opacus's
    ``UniformWithReplacementSampler`` does the same). Each step's draw comes from a generator
    seeded by (seed, step), so a resumed run draws exactly the batches the uninterrupted run
    would. Seeded draws are reproducible, not cryptographically secure.
    """

    def __init__(self, *, num_records: int, sample_rate: float, seed: int):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.num_records = num_records
        self.sample_rate = sample_rate
        self.seed = seed

    def indices(self, step: int) -> list[int]:
        generator = torch.Generator().manual_seed(step_seed(self.seed, step, "poisson"))
        mask = torch.rand(self.num_records, generator=generator) < self.sample_rate
        return mask.nonzero(as_tuple=False).reshape(-1).tolist()


class ShuffledBatchSampler:
    """Fixed-size batches from a fresh seeded permutation each epoch (non-private training)."""

    def __init__(self, *, num_records: int, batch_size: int, seed: int):
        self.num_records = num_records
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = -(-num_records // batch_size)

    def indices(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(step_seed(self.seed, epoch, "shuffle"))
        order = torch.randperm(self.num_records, generator=generator)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()


def rank_share(indices: list[int], *, rank: int, world_size: int) -> list[int]:
    """Return the records of one logical batch that rank ``rank`` of ``world_size`` processes.

    Every rank evaluates the same seeded draw of the step and keeps every ``world_size``-th
    record of it, starting at its rank. The shares are disjoint, their union is the draw itself
    (for a Poisson draw: a Poisson sample of the whole dataset at the one rate q), and their
    sizes differ by at most one record. A run therefore trains on the same logical batches
    whatever its number of processes, and can resume with a different one.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    return indices[rank::world_size]
