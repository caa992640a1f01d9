"""The description benchmarks' report: per criterion the mean judge score on the original's 0-5 scale, its 95%
bootstrap interval, the items scored and the judge failures; the reference-based metrics; JSON and Markdown.

A judge failure is left out of its criterion's mean and counted in ``judge_failures``. ``percent`` is the mean
times 20, the number ADL-X/LLAVIDAL's ``eval_charades_desc.py`` / ``eval_tsu_desc.py`` print ("Final
correctness ...: 57.40"); ``average`` is the mean of the five criteria's means, as their "Final average".
Reference metrics compare the model's description (TSU: its clips' descriptions joined, not the judge's summary,
so that they stay judge-free) with the reference answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from llavidal_core.evaluation.description_answers import DescriptionPrediction
from llavidal_core.evaluation.description_files import DescriptionItem
from llavidal_core.evaluation.description_scores import ItemJudgements
from llavidal_core.evaluation.judge_prompts import CRITERIA
from llavidal_core.evaluation.reference_metrics import reference_scores
from llavidal_core.evaluation.score_statistics import bootstrap_mean

PERCENT_PER_POINT = 20  # the original's "Final ..." numbers: mean score x 20
_METRIC_NAMES = {"bleu4": "BLEU-4", "chrf": "chrF", "rougeL_f1": "ROUGE-L F1"}


def criterion_scores(judged: Sequence[ItemJudgements]) -> dict[str, dict]:
    """Per criterion: ``mean`` (None when nothing was scored), ``ci95``, ``n`` scored, ``judge_failures``,
    ``percent``; plus ``average``, the mean of the criteria's means, when every criterion has one."""
    scores: dict[str, dict] = {}
    for criterion in CRITERIA:
        values = [j.criteria[criterion].value for j in judged if not j.criteria[criterion].failed]
        failures = sum(j.criteria[criterion].failed for j in judged)
        if values:
            estimate = bootstrap_mean(values).to_dict()
            scores[criterion] = estimate | {"judge_failures": failures,
                                            "percent": estimate["mean"] * PERCENT_PER_POINT}
        else:
            scores[criterion] = {"mean": None, "ci95": None, "n": 0, "judge_failures": failures, "percent": None}
    means = [entry["mean"] for entry in scores.values()]
    if all(mean is not None for mean in means):
        average = sum(means) / len(means)
        scores["average"] = {"mean": average, "percent": average * PERCENT_PER_POINT}
    return scores


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(ci95, digits: int = 3) -> str:
    return "" if not ci95 else f"{ci95[0]:.{digits}f}–{ci95[1]:.{digits}f}"


def criteria_table(scores: dict[str, dict]) -> str:
    lines = ["| criterion | mean (0–5) | 95% CI | n | judge failures |", "| --- | ---: | ---: | ---: | ---: |"]
    for criterion in CRITERIA:
        entry = scores[criterion]
        lines.append(f"| {criterion} | {_number(entry['mean'])} | {_interval(entry['ci95'])} | {entry['n']} | "
                     f"{entry['judge_failures']} |")
    if "average" in scores:
        lines.append(f"| average | {_number(scores['average']['mean'])} | | | |")
    return "\n".join(lines)


def metrics_table(metrics: dict, n: int) -> str:
    lines = ["| reference metric (0–100) | score | 95% CI | n |", "| --- | ---: | ---: | ---: |"]
    for key, name in _METRIC_NAMES.items():
        entry = metrics[key]
        score = entry["score"] if "score" in entry else entry["mean"]
        lines.append(f"| {name} | {score:.2f} | {_interval(entry.get('ci95'), 2)} | {n} |")
    return "\n".join(lines)


def description_report(protocol: str, items: Sequence[DescriptionItem], predictions: Sequence[DescriptionPrediction],
                       judged: Sequence[ItemJudgements] | None, skipped: Sequence[str],
                       judge: str | None) -> dict:
    """The report as a JSON-able dict whose ``markdown`` holds the tables (and the judge's identity).

    ``judged`` is None when no judge was given: the report then has reference metrics only.
    """
    by_id = {item.item_id: item for item in items}
    report: dict = {"protocol": protocol, "judge": judge, "num_items": len(predictions),
                    "skipped_missing_video": len(skipped), "first_skipped": list(skipped[:20])}
    parts = [f"Judge: {judge}" if judge else "Judge: none (reference metrics only)"]
    if judged is not None:
        report["criteria"] = criterion_scores(judged)
        if protocol == "tsu":
            report["summary_failures"] = sum(any(s.failed for s in j.summaries.values()) for j in judged)
        parts.append(criteria_table(report["criteria"]))
    if predictions:
        report["reference_metrics"] = reference_scores([p.description for p in predictions],
                                                       [by_id[p.item_id].answer for p in predictions])
        parts.append(metrics_table(report["reference_metrics"], len(predictions)))
    report["markdown"] = "\n\n".join(parts)
    return report
