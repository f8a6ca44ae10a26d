"""How sure a difference between two models is: a paired bootstrap over test queries.

Two models scored on the same queries give one value each per query (AP, or 1 for a rank-1 hit
and 0 for a miss). The bootstrap resamples the queries with replacement and takes the
percentiles of the mean difference (Efron & Tibshirani, *An Introduction to the Bootstrap*,
1993, Ch. 13): an interval that excludes 0 says the difference is not an accident of which
people happened to be queries. It says nothing about training noise: compare several seeds
for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean difference and its bootstrap percentile interval at ``level``."""

    mean: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] ({self.level:.0%})"


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, reps: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The mean of ``a - b`` over queries and its percentile interval from ``reps`` resamples
    of the queries (the same resample for both: the pairing is kept). Seeded: reproducible."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired_bootstrap needs two equal, non-empty 1-d arrays, got {a.shape} and {b.shape}"
        )
    if reps < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"paired_bootstrap needs reps >= 1 and 0 < level < 1, got {reps}, {level}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for start in range(0, reps, 1000):  # bounded memory: 1000 resamples at a time
        stop = min(start + 1000, reps)
        picks = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[picks].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high), level)
