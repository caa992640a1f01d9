"""The original's way of reading a free-text MCQ answer (``llavidal eval mcq --mode generate --parser llm``): an
LLM judge is asked which option the answer picks, 'Z' meaning none (ADL-X/LLAVIDAL
``evaluation/ADL-X/mcq_parsing_llm.py``, ``build_prompt`` with the question and ``"(A) .. (B) .."``, as
``eval_adlxmcq.py`` calls it).

The judge's reply is read strictly (`parse_option_letter`); 'Z' is "no answer" (counted wrong), and a reply that
never parses is a judge failure: also no letter, but counted apart. The original reads the first capital A-E
anywhere in the reply instead, so an empty reply reads as A. For comparison the rule parser's letter
(`llavidal_core.evaluation.mcq_answers`) of the same answers is kept beside the judge's and scored too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llavidal_core.evaluation.accuracy import accuracy_report, markdown_table
from llavidal_core.evaluation.judge_prompts import mcq_parsing_messages
from llavidal_core.evaluation.judge_replies import NONE_OF_THE_OPTIONS, parse_option_letter
from llavidal_core.evaluation.judging import Judgement, JudgeSession
from llavidal_core.evaluation.mcq_eval import MCQEvaluation
from llavidal_core.evaluation.mcq_files import MCQuestion, choices_text

LETTER_MAX_TOKENS = 64  # "The best answer is: (B) walk to the sink" and the like


def judge_letter(session: JudgeSession, question: MCQuestion, answer: str) -> Judgement:
    """The judge's letter for ``answer`` to ``question``: a choice letter or 'Z' (none), or a failure."""
    options = choices_text(question.choices)
    return session.judge_item("mcq_letter", {"question": question.question, "options": options, "answer": answer},
                              mcq_parsing_messages(question.question, options, answer),
                              lambda reply: parse_option_letter(reply, question.choices), LETTER_MAX_TOKENS)


def _counts(flags_by_task: Mapping[str, Sequence[bool]]) -> dict[str, int]:
    counts = {task: sum(flags) for task, flags in flags_by_task.items()}
    if len(counts) > 1:
        counts["overall"] = sum(counts.values())
    return counts


@dataclass
class JudgeParsedMCQ:
    """A ``generate`` evaluation whose letters the judge read; ``rule_letters`` and ``judgements`` by position."""

    evaluation: MCQEvaluation
    rule_letters: list[str | None]
    judgements: list[Judgement]
    judge: str

    def report(self) -> dict:
        """`MCQEvaluation.report` of the judge's letters, plus the judge, its failures, the 'Z' answers, and the
        rule parser's accuracy on the same answers (JSON and a second Markdown table)."""
        report = self.evaluation.report()
        by_task: dict[str, list[int]] = {}
        for index, prediction in enumerate(self.evaluation.predictions):
            by_task.setdefault(prediction.task, []).append(index)
        rule = accuracy_report({task: [self.rule_letters[i] == self.evaluation.predictions[i].answer for i in indices]
                                for task, indices in by_task.items()}) if by_task else {}
        failures = _counts({task: [self.judgements[i].failed for i in indices] for task, indices in by_task.items()})
        report |= {
            "parser": "llm",
            "judge": self.judge,
            "judge_failures": failures,
            "none_of_the_options": _counts({task: [self.judgements[i].value == NONE_OF_THE_OPTIONS for i in indices]
                                            for task, indices in by_task.items()}),
            "rule_parser_accuracy": {task: result.to_dict() for task, result in rule.items()},
        }
        if rule:
            report["markdown"] = (f"Letters read by the judge ({self.judge}); no answer = 'Z' or a judge failure:\n\n"
                                  f"{report['markdown']}\n\nJudge failures: "
                                  + ", ".join(f"{task} {count}" for task, count in failures.items())
                                  + "\n\nLetters read by the rule parser from the same answers:\n\n"
                                  + markdown_table(rule))
        return report

    def prediction_records(self) -> list[dict]:
        records = self.evaluation.prediction_records()
        for record, rule_letter, judgement in zip(records, self.rule_letters, self.judgements):
            record |= {"predicted_rule": rule_letter, "judge_letter": judgement.value,
                       "judge_replies": list(judgement.replies), "judge_failure": judgement.failure}
        return records


def parse_with_judge(evaluation: MCQEvaluation, questions: Mapping[tuple[str, str], MCQuestion],
                     session: JudgeSession) -> JudgeParsedMCQ:
    """``evaluation`` (``generate`` mode) with each prediction's letter read by the judge from its answer;
    ``questions`` maps ``(task, question_id)`` to the question. 'Z' and judge failures give no letter."""
    if evaluation.mode != "generate":
        raise ValueError("the judge reads letters from generated answers: run in generate mode")
    predictions, rule_letters, judgements = [], [], []
    for prediction in evaluation.predictions:
        judgement = judge_letter(session, questions[prediction.task, prediction.question_id],
                                 prediction.generated or "")
        letter = judgement.value if judgement.value not in (None, NONE_OF_THE_OPTIONS) else None
        rule_letters.append(prediction.predicted)
        judgements.append(judgement)
        predictions.append(dataclasses.replace(prediction, predicted=letter))
    parsed = MCQEvaluation(predictions, dict(evaluation.missing_features), mode="generate")
    return JudgeParsedMCQ(parsed, rule_letters, judgements, session.judge.identity)
