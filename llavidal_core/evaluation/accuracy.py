"""Accuracy with a 95% bootstrap confidence interval, per task and overall, as JSON and Markdown."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict:
        values = asdict(self)
        values["ci95"] = list(self.ci95)
        return values


def bootstrap_interval(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float]]:
    """``(mean, (low, high))``: the mean of ``values`` and the 2.5/97.5 percentiles of its bootstrap
    distribution (seeded: reproducible). The caller checks ``values`` is not empty."""
    n = len(values)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return sum(values) / n, (means[int(0.025 * (resamples - 1))], means[int(round(0.975 * (resamples - 1)))])


def bootstrap_accuracy(correct: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> Accuracy:
    """Share of ``correct`` answers with its seeded 95% bootstrap interval (`bootstrap_interval`)."""
    if not correct:
        raise ValueError("no answers to score")
    accuracy, ci95 = bootstrap_interval([1.0 if c else 0.0 for c in correct], resamples, seed)
    return Accuracy(accuracy, ci95, len(correct))


def accuracy_report(correct_by_task: Mapping[str, Sequence[bool]]) -> dict[str, Accuracy]:
    """Accuracy per task, plus ``"overall"`` over every answer when there is more than one task."""
    report = {task: bootstrap_accuracy(correct) for task, correct in correct_by_task.items()}
    if len(report) > 1:
        report["overall"] = bootstrap_accuracy([c for correct in correct_by_task.values() for c in correct])
    return report


def markdown_table(report: Mapping[str, Accuracy], label: str = "task",
                   no_answer: Mapping[str, int] | None = None) -> str:
    """The report as a Markdown table; with ``no_answer`` ({row: count}) a "no answer" column (0 when absent)."""
    extra = ("| no answer ", "| ---: ") if no_answer is not None else ("", "")
    lines = [f"| {label} | accuracy | 95% CI | n {extra[0]}|", f"| --- | ---: | ---: | ---: {extra[1]}|"]
    for name, result in report.items():
        low, high = result.ci95
        count = f"| {no_answer.get(name, 0)} " if no_answer is not None else ""
        lines.append(f"| {name} | {result.accuracy:.3f} | {low:.3f}–{high:.3f} | {result.n} {count}|")
    return "\n".join(lines)
