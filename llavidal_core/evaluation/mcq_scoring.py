"""Deterministic multiple-choice scoring: each option's log-likelihood under the model, or a rule-parsed answer.

The question is asked exactly as LLAVIDAL's evaluation script for its file asks it (`MCQuestion.prompt`: for
ADLMCQ ``"{question} The output should be the choice among one of the following choices. Choices are (A) ...
(B) ..."``), followed by the placeholders of the cues the model has features for. In ``loglik`` mode (the default) every option, written ``"(X) text"``, is scored as the
assistant's answer: the mean log-probability of its tokens (``sum`` on request), and the best option is the
prediction. No sampling and no LLM judge, so a score is reproducible to the bit on the same machine. In
``generate`` mode the model answers greedily and the letter is read from the answer by fixed rules
(`llavidal_core.evaluation.mcq_answers`); an answer that names no letter plainly is "no answer" (``predicted``
None), counted apart in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from llavidal_core.evaluation.mcq_answers import parse_choice_letter
from llavidal_core.evaluation.mcq_files import MCQuestion

SCORING_MODES = ("loglik", "generate")
NORMALIZATIONS = ("mean", "sum")


@dataclass(frozen=True)
class MCQPrediction:
    question_id: str
    task: str
    video_id: str
    answer: str
    predicted: str | None
    scores: dict[str, float]
    generated: str | None = None

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer


def mcq_prompt(question: MCQuestion, placeholders: Sequence[str] = ()) -> str:
    """The question's prompt (`MCQuestion.prompt`), then the cues' placeholders on a line of their own.

    The placeholders come after the text, as LLAVIDAL's inference appends ``"\n<video>"`` to the question
    (and as `LlavidalPipeline` does), so the cue tokens sit right before the answer.
    """
    cues = "".join(placeholders)
    return f"{question.prompt}\n{cues}" if cues else question.prompt


def option_answer(letter: str, text: str) -> str:
    return f"({letter}) {text}"


def answer_log_likelihoods(model, batch: Mapping[str, torch.Tensor], normalize: str = "mean") -> torch.Tensor:
    """Per-sample log-likelihood of the labelled (answer) tokens: their mean, or their sum."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    cue_features=batch.get("cue_features"), cue_feature_masks=batch.get("cue_feature_masks"))
    logits = outputs.logits[:, :-1].float()
    labels = batch["labels"][:, 1:].to(logits.device)
    answer = labels != -100
    token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    totals = (token_log_probs * answer).sum(dim=1)
    return totals / answer.sum(dim=1).clamp(min=1) if normalize == "mean" else totals


def _move(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    moved = {key: value.to(device) for key, value in batch.items() if isinstance(value, torch.Tensor)}
    moved["cue_features"] = {cue: t.to(device, dtype) for cue, t in batch["cue_features"].items()}
    moved["cue_feature_masks"] = {cue: t.to(device) for cue, t in batch["cue_feature_masks"].items()}
    return moved


def _placeholders(processor, features: Mapping[str, torch.Tensor]) -> list[str]:
    return [spec.placeholder for spec in processor.cues if spec.name in features]


@torch.no_grad()
def score_by_log_likelihood(model, processor, question: MCQuestion, features: Mapping[str, torch.Tensor],
                            normalize: str = "mean") -> MCQPrediction:
    """Score every option of one question in one batch; the prediction is the highest-scoring letter."""
    prompt = mcq_prompt(question, _placeholders(processor, features))
    letters = list(question.choices)
    conversations = [[{"from": "human", "value": prompt},
                      {"from": "gpt", "value": option_answer(letter, question.choices[letter])}]
                     for letter in letters]
    batch = processor(conversations, [dict(features) for _ in letters])
    parameter = next(model.parameters())
    scores = answer_log_likelihoods(model, _move(batch, parameter.device, parameter.dtype), normalize)
    by_letter = {letter: float(score) for letter, score in zip(letters, scores)}
    predicted = max(letters, key=lambda letter: by_letter[letter])
    return MCQPrediction(question.question_id, question.task, question.video_id, question.answer, predicted,
                         by_letter)


@torch.no_grad()
def score_by_generation(model, processor, question: MCQuestion, features: Mapping[str, torch.Tensor],
                        max_new_tokens: int = 32) -> MCQPrediction:
    """Answer greedily, then read the letter with `parse_choice_letter` (None when no rule matches)."""
    prompt = mcq_prompt(question, _placeholders(processor, features))
    batch = processor([[{"from": "human", "value": prompt}]], [dict(features)], add_generation_prompt=True)
    parameter = next(model.parameters())
    batch = _move(batch, parameter.device, parameter.dtype)
    output = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            cue_features=batch["cue_features"], cue_feature_masks=batch["cue_feature_masks"],
                            max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=processor.tokenizer.pad_token_id)
    text = processor.decode(output[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return MCQPrediction(question.question_id, question.task, question.video_id, question.answer,
                         parse_choice_letter(text, question.choices), {}, generated=text)
