"""Percentile bootstrap confidence intervals over records."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_intervals(
    statistics: Callable[..., Sequence[float]],
    sizes: Sequence[int],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[list[float] | None]:
    """Percentile intervals of each value ``statistics(*indices)`` returns, on shared resamples.

    ``sizes`` gives the number of records in each independent group (for example train and
    test). Each resample draws that many indices per group with replacement and evaluates all
    statistics on the same draw. A statistic's interval is None when a group has fewer than 2
    records or when fewer than half of its resampled values are finite.
    """
    if any(n < 2 for n in sizes):
        first = statistics(*(np.arange(n) for n in sizes))
        return [None] * len(first)
    rng = np.random.default_rng(seed)
    values = np.array(
        [statistics(*(rng.integers(0, n, n) for n in sizes)) for _ in range(resamples)],
        dtype=np.float64,
    ).reshape(resamples, -1)
    tail = (1 - level) / 2 * 100
    intervals: list[list[float] | None] = []
    for column in values.T:
        finite = column[np.isfinite(column)]
        if len(finite) < resamples // 2:
            intervals.append(None)
            continue
        low, high = np.percentile(finite, [tail, 100 - tail])
        intervals.append([float(low), float(high)])
    return intervals


def bootstrap_interval(
    statistic: Callable[..., float],
    sizes: Sequence[int],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[float] | None:
    """Percentile interval of ``statistic(*indices)``, each group resampled with replacement.

    ``sizes`` gives the number of records in each independent group (for example train and
    test); each resample draws that many indices per group.
    """
    return bootstrap_intervals(
        lambda *indices: [statistic(*indices)], sizes, resamples=resamples, level=level, seed=seed
    )[0]
