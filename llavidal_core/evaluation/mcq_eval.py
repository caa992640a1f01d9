"""Running a model over ADLMCQ files: features per video from a feature store, a prediction per question,
accuracy per task and overall with 95% bootstrap intervals."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from llavidal_core.evaluation.accuracy import accuracy_report, markdown_table
from llavidal_core.evaluation.mcq_files import MCQFile
from llavidal_core.evaluation.mcq_scoring import (
    SCORING_MODES,
    MCQPrediction,
    score_by_generation,
    score_by_log_likelihood,
)


@dataclass
class MCQEvaluation:
    """Every prediction, the questions skipped for want of features, and the scoring mode."""

    predictions: list[MCQPrediction] = field(default_factory=list)
    missing_features: dict[str, list[str]] = field(default_factory=dict)  # task -> question ids skipped
    mode: str = "loglik"

    def no_answer_counts(self) -> dict[str, int]:
        """Per task (and ``"overall"`` when there are several), the answers no letter could be read from."""
        counts: dict[str, int] = {}
        for prediction in self.predictions:
            counts[prediction.task] = counts.get(prediction.task, 0) + (prediction.predicted is None)
        if len(counts) > 1:
            counts["overall"] = sum(counts.values())
        return counts

    def report(self) -> dict:
        """Accuracy per task and overall (an answer without a letter counts as wrong), the questions skipped, and
        in ``generate`` mode the answers without a letter (``no_answer``, also a Markdown column)."""
        by_task: dict[str, list[bool]] = {}
        for prediction in self.predictions:
            by_task.setdefault(prediction.task, []).append(prediction.correct)
        accuracies = accuracy_report(by_task) if by_task else {}
        no_answer = self.no_answer_counts() if self.mode == "generate" else None
        report = {
            "accuracy": {task: result.to_dict() for task, result in accuracies.items()},
            "skipped_missing_features": {task: len(ids) for task, ids in self.missing_features.items()},
            "markdown": markdown_table(accuracies, no_answer=no_answer) if accuracies else "",
        }
        if no_answer is not None:
            report["no_answer"] = no_answer
        return report

    def prediction_records(self) -> list[dict]:
        return [asdict(p) | {"correct": p.correct} for p in self.predictions]


def cue_features_for(store, video_id: str, cue_names: Sequence[str]) -> dict:
    """The features the store holds for ``video_id`` among ``cue_names`` (objects flattened to rows)."""
    if video_id not in store:
        return {}
    features = {}
    for cue in cue_names:
        if store.has(video_id, cue):
            tensor = store.read(video_id, cue)
            features[cue] = tensor.reshape(-1, tensor.shape[-1])
    return features


def features_from_store(store, cue_names: Sequence[str]) -> Callable[[str], dict]:
    return lambda video_id: cue_features_for(store, video_id, cue_names)


def features_from_videos(pipeline, videos: Mapping[str, Path]) -> Callable[[str], dict]:
    """Compute, from ``videos``, the features of every cue whose encoder reads video files (``video``,
    ``object``), with the encoders the model records (`LlavidalPipeline`): as its training features were made."""

    def features_for(video_id: str) -> dict:
        if video_id not in videos:
            return {}
        path = str(videos[video_id])
        return pipeline.compute_features([{cue: path for cue in pipeline.video_cues()}])[0]

    return features_for


def evaluate_mcq(model, processor, files: Sequence[MCQFile], features_for: Callable[[str], dict], *,
                 mode: str = "loglik", normalize: str = "mean", limit: int | None = None) -> MCQEvaluation:
    """Predict every question of ``files`` whose video has features (``features_for(video_id)``)."""
    if mode not in SCORING_MODES:
        raise ValueError(f"mode must be one of {SCORING_MODES}, got {mode!r}")
    evaluation = MCQEvaluation(mode=mode)
    questions = [q for mcq_file in files for q in mcq_file.questions[:limit]]
    cache: dict[str, dict] = {}
    for question in tqdm(questions, desc="MCQ", unit="question", disable=None):
        if question.video_id not in cache:
            cache = {question.video_id: features_for(question.video_id)}
        features = cache[question.video_id]
        if not features:
            evaluation.missing_features.setdefault(question.task, []).append(question.question_id)
            continue
        if mode == "loglik":
            prediction = score_by_log_likelihood(model, processor, question, features, normalize)
        else:
            prediction = score_by_generation(model, processor, question, features)
        evaluation.predictions.append(prediction)
    return evaluation
