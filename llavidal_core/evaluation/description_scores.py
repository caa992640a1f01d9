"""The judge's part of the description benchmarks: TSU summaries, then the five Video-ChatGPT criteria.

Per item, as ADL-X/LLAVIDAL ``evaluation/ADL-X/eval_charades_desc.py`` and ``eval_tsu_desc.py`` do it:

- TSU only: each of the three "mega captions" (the clips' answers joined) is summarised by the judge into one
  description of the whole video (`summary_messages`);
- correctness, detail orientation, contextual and temporal understanding score the description (TSU: its
  summary) against the reference answer (`criterion_messages`);
- consistency scores the two paraphrased questions' answers (TSU: their summaries) together against their
  common reference (`consistency_messages`).

Each judgement is a `Judgement` (value or failure, see `llavidal_core.evaluation.judging`). A criterion that
needs a TSU summary the judge never gave is a failure too ("no summary"), not asked. The summaries are asked at
the judge's temperature (0 by default); the original asks GPT-3.5 at 0.7.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llavidal_core.evaluation.description_answers import DescriptionPrediction
from llavidal_core.evaluation.description_files import DescriptionItem
from llavidal_core.evaluation.judge_prompts import (
    CRITERIA,
    SUMMARY_MAX_TOKENS,
    consistency_messages,
    criterion_messages,
    summary_messages,
)
from llavidal_core.evaluation.judge_replies import parse_score, parse_summary
from llavidal_core.evaluation.judging import Judgement, JudgeSession

SCORE_MAX_TOKENS = 64
"""Room for a score reply: ``{'score': 4}`` is under ten tokens; a longer reply is not what was asked for."""
SUMMARIES = ("description", "consistency_1", "consistency_2")


@dataclass
class ItemJudgements:
    """The judgements about one item: TSU ``summaries`` (by `SUMMARIES` name) and a `Judgement` per criterion."""

    item_id: str
    video_name: str
    summaries: dict[str, Judgement] = field(default_factory=dict)
    criteria: dict[str, Judgement] = field(default_factory=dict)

    def to_record(self) -> dict:
        record: dict = {"item_id": self.item_id, "video_name": self.video_name}
        if self.summaries:
            record["summaries"] = {name: j.value for name, j in self.summaries.items()}
        record["scores"] = {name: j.value for name, j in self.criteria.items()}
        failures = {name: {"failure": j.failure, "replies": list(j.replies)}
                    for name, j in {**self.summaries, **self.criteria}.items() if j.failed}
        if failures:
            record["judge_failures"] = failures
        return record


def summarize(session: JudgeSession, mega_caption: str) -> Judgement:
    """The judge's one description of a whole TSU video from its clips' descriptions joined with spaces."""
    return session.judge_item("summary", {"mega_caption": mega_caption}, summary_messages(mega_caption),
                              parse_summary, SUMMARY_MAX_TOKENS)


def score_criterion(session: JudgeSession, criterion: str, question: str, reference: str,
                    prediction: str) -> Judgement:
    """One of the first four `CRITERIA`, 0-5, for ``prediction`` against ``reference``."""
    return session.judge_item(criterion, {"question": question, "reference": reference, "prediction": prediction},
                              criterion_messages(criterion, question, reference, prediction), parse_score,
                              SCORE_MAX_TOKENS)


def score_consistency(session: JudgeSession, questions: tuple[str, str], reference: str,
                      predictions: tuple[str, str]) -> Judgement:
    """Consistency, 0-5, of the answers to two paraphrased questions with one common reference."""
    fields = {"question_1": questions[0], "question_2": questions[1], "reference": reference,
              "prediction_1": predictions[0], "prediction_2": predictions[1]}
    return session.judge_item("consistency", fields, consistency_messages(*questions, reference, *predictions),
                              parse_score, SCORE_MAX_TOKENS)


def _no_summary(summaries: list[Judgement]) -> Judgement:
    why = "; ".join(j.failure for j in summaries if j.failed)
    return Judgement(None, (), f"no summary of the clips' descriptions ({why})")


def judge_item(session: JudgeSession, item: DescriptionItem, prediction: DescriptionPrediction,
               protocol: str) -> ItemJudgements:
    """Every judgement about one item, by ``protocol`` ("charades" or "tsu")."""
    judged = ItemJudgements(item.item_id, item.video_name)
    texts = {"description": prediction.description, "consistency_1": prediction.consistency[0],
             "consistency_2": prediction.consistency[1]}
    if protocol == "tsu":
        judged.summaries = {name: summarize(session, texts[name]) for name in SUMMARIES}
        texts = {name: judgement.value for name, judgement in judged.summaries.items()}
    for criterion in CRITERIA[:4]:
        if texts["description"] is None:
            judged.criteria[criterion] = _no_summary([judged.summaries["description"]])
        else:
            judged.criteria[criterion] = score_criterion(session, criterion, item.question, item.answer,
                                                         texts["description"])
    if texts["consistency_1"] is None or texts["consistency_2"] is None:
        judged.criteria["consistency"] = _no_summary([judged.summaries["consistency_1"],
                                                      judged.summaries["consistency_2"]])
    else:
        judged.criteria["consistency"] = score_consistency(session, item.consistency_questions,
                                                           item.consistency_answer,
                                                           (texts["consistency_1"], texts["consistency_2"]))
    return judged
