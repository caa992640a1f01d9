"""`ChatSession`: a multi-turn conversation about one sample, whose cue features are computed once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch


class ChatSession:
    """Ask several questions about one video (and its other cues); the history goes into every prompt."""

    def __init__(self, pipeline, video=None, inputs: Mapping[str, Any] | None = None,
                 features: Mapping[str, torch.Tensor] | None = None):
        self.pipeline = pipeline
        self.history: list[dict[str, str]] = []
        self.features: dict[str, torch.Tensor] = {}
        self.set_sample(video=video, inputs=inputs, features=features)

    def set_sample(self, video=None, inputs: Mapping[str, Any] | None = None,
                   features: Mapping[str, torch.Tensor] | None = None) -> None:
        """Talk about another sample from now on: its features are computed and the history is cleared."""
        self.features, _ = self.pipeline._samples(video, inputs, features)
        self.features = self.features[0]
        self.pipeline._warn_missing([self.features])
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the sample's features are kept)."""
        self.history = []

    def _conversation(self, question: str) -> list[dict[str, str]]:
        if self.history:
            if not isinstance(question, str) or not question.strip():
                raise ValueError("the question is empty")
            message = question.strip()
        else:
            message = self.pipeline.user_message(question, self.features)
        return [*self.history, {"from": "human", "value": message}]

    def _settings(self, settings: dict[str, Any]):
        chosen = self.pipeline.settings.with_overrides(**settings)
        if chosen.num_return_sequences != 1:
            raise ValueError("a chat keeps one answer per turn: num_return_sequences must be 1")
        return chosen

    def _remember(self, conversation: list[dict[str, str]], answer: str) -> None:
        """Add the turn to the history. A cue placeholder the model wrote as text (``<video>``) is taken out of
        the remembered answer: in a prompt it would stand for the cue's features a second time."""
        for spec in self.pipeline.processor.cues:
            answer = answer.replace(spec.placeholder, "")
        self.history = [*conversation, {"from": "gpt", "value": answer.strip()}]

    def ask(self, question: str, **settings: Any) -> str:
        conversation = self._conversation(question)
        answer = self.pipeline.generate_answers([conversation], [self.features], self._settings(settings))[0]
        self._remember(conversation, answer)
        return answer

    def stream(self, question: str, **settings: Any) -> Iterator[str]:
        """Like `ask`, yielding the answer piece by piece; the turn joins the history once it is complete."""
        conversation = self._conversation(question)
        pieces = []
        for piece in self.pipeline.stream_answer(conversation, self.features, self._settings(settings)):
            pieces.append(piece)
            yield piece
        self._remember(conversation, "".join(pieces))
