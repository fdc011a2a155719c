"""Bootstrap confidence intervals over records."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


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
    if any(n < 2 for n in sizes):
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = statistic(*(rng.integers(0, n, n) for n in sizes))
        if np.isfinite(value):
            values.append(value)
    if len(values) < resamples // 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]
