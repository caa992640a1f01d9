"""The mean of per-item scores with a seeded 95% bootstrap interval (as `llavidal_core.evaluation.accuracy` does
for right/wrong answers: the same resample count and seed, so reruns give the same interval)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llavidal_core.evaluation.accuracy import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED


@dataclass(frozen=True)
class MeanEstimate:
    mean: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci95": list(self.ci95), "n": self.n}


def bootstrap_mean(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> MeanEstimate:
    """Mean of ``values`` and the 2.5/97.5 percentiles of its bootstrap distribution. Raises ValueError when empty."""
    n = len(values)
    if n == 0:
        raise ValueError("no scores to average")
    floats = [float(v) for v in values]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(floats, k=n)) / n for _ in range(resamples))
    low = means[int(0.025 * (resamples - 1))]
    high = means[int(round(0.975 * (resamples - 1)))]
    return MeanEstimate(sum(floats) / n, (low, high), n)
