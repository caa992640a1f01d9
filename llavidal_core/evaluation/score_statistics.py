"""The mean of per-item scores with a seeded 95% bootstrap interval (as `llavidal_core.evaluation.accuracy` does
for right/wrong answers: the same resample count and seed, so reruns give the same interval)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llavidal_core.evaluation.accuracy import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_interval


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
    if len(values) == 0:
        raise ValueError("no scores to average")
    mean, ci95 = bootstrap_interval([float(v) for v in values], resamples, seed)
    return MeanEstimate(mean, ci95, len(values))
