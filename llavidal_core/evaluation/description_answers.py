"""The model's answers for the description benchmarks: the description question and the two paraphrased
consistency questions, about each video (Charades) or each of a video's clips (TSU), decoded greedily.

As the original scripts ask them (ADL-X/LLAVIDAL ``evaluation/ADL-X/eval_charades_desc.py``,
``eval_tsu_desc.py``): a Charades video answers ``Q``, ``cons_Q1`` and ``cons_Q2``; a TSU video answers the
three hard-coded questions once per clip, and each question's answers are joined with spaces, in clip order,
into the "mega caption" the judge later summarises. ``max_new_tokens`` defaults to the original's 1024. The
three questions of one video (or clip) are answered as one left-padded batch.

A video (or TSU clip) without features is skipped and reported, never scored; the original counts a missing
Charades video in its average's denominator, as if scored 0 on every criterion.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from llavidal_core.evaluation.description_files import DescriptionFile, DescriptionItem

logger = logging.getLogger(__name__)

MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class DescriptionPrediction:
    """The model's answers about one item: ``description`` (to the description question) and ``consistency``
    (to the two paraphrased questions). For TSU these are the clips' answers joined with spaces; ``clips`` lists
    the clips answered, in order, and ``clip_answers`` each clip's three answers."""

    item_id: str
    video_name: str
    description: str
    consistency: tuple[str, str]
    clips: list[str] = field(default_factory=list)
    clip_answers: list[list[str]] = field(default_factory=list)

    def to_record(self) -> dict:
        """The prediction as JSON-able fields (``clips`` and ``clip_answers`` only for TSU)."""
        record = asdict(self)
        record["consistency"] = list(self.consistency)
        if not self.clips:
            del record["clips"], record["clip_answers"]
        return record


@dataclass
class DescriptionAnswers:
    predictions: list[DescriptionPrediction]
    skipped: list[str]  # video names without features (TSU: without any clip that has features)


def answer_questions(pipeline, features: dict, questions: Sequence[str], max_new_tokens: int) -> list[str]:
    """``pipeline``'s greedy answers to ``questions`` about one sample's ``features``, in one batch."""
    return list(pipeline(features=[features] * len(questions), question=list(questions),
                         max_new_tokens=max_new_tokens, do_sample=False))


def _questions(item: DescriptionItem) -> list[str]:
    return [item.question, *item.consistency_questions]


def answer_video(pipeline, source, item: DescriptionItem, max_new_tokens: int) -> DescriptionPrediction | None:
    """A Charades item's three answers about its video, or None when ``source`` has no features for it."""
    features = source.video_features(item.video_name)
    if not features:
        return None
    description, first, second = answer_questions(pipeline, features, _questions(item), max_new_tokens)
    return DescriptionPrediction(item.item_id, item.video_name, description, (first, second))


def answer_clips(pipeline, source, item: DescriptionItem, max_new_tokens: int) -> DescriptionPrediction | None:
    """A TSU item's three answers per clip, joined with spaces in clip order; None when no clip has features."""
    clips, per_clip = [], []
    for clip in source.clip_ids(item.video_name):
        features = source.clip_features(clip)
        if not features:
            logger.debug("%s: no features, left out of %s", clip, item.video_name)
            continue
        clips.append(clip)
        per_clip.append(answer_questions(pipeline, features, _questions(item), max_new_tokens))
    if not clips:
        return None
    joined = [" ".join(answers[index] for answers in per_clip) for index in range(3)]
    return DescriptionPrediction(item.item_id, item.video_name, joined[0], (joined[1], joined[2]), clips, per_clip)


def answer_descriptions(pipeline, described: DescriptionFile, source, *, max_new_tokens: int = MAX_NEW_TOKENS,
                        limit: int | None = None) -> DescriptionAnswers:
    """The model's answers for the first ``limit`` items of ``described`` (all by default), by its protocol."""
    answer = answer_clips if described.protocol == "tsu" else answer_video
    answers = DescriptionAnswers([], [])
    for item in tqdm(described.items[:limit], desc="describing", unit="video", disable=None):
        prediction = answer(pipeline, source, item, max_new_tokens)
        if prediction is None:
            answers.skipped.append(item.video_name)
        else:
            answers.predictions.append(prediction)
    return answers
