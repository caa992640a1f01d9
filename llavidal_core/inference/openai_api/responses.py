"""OpenAI's response objects as JSON-ready dicts: a chat completion, its streamed chunks as server-sent
events, usage, the model list."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

DONE = "data: [DONE]\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def event(data: dict[str, Any]) -> str:
    """One server-sent event carrying ``data`` as JSON (OpenAI's streaming format)."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclass(frozen=True)
class Completion:
    """The identity shared by a completion and all its chunks: ``id``, ``created`` (Unix seconds), ``model``."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def body(self, answers: Sequence[str], finish_reasons: Sequence[str], prompt_tokens: int,
             completion_tokens: int) -> dict[str, Any]:
        """A ``chat.completion``: one choice per answer."""
        choices = [{"index": index, "message": {"role": "assistant", "content": answer},
                    "finish_reason": reason, "logprobs": None}
                   for index, (answer, reason) in enumerate(zip(answers, finish_reasons))]
        return {**self._head("chat.completion"), "choices": choices,
                "usage": usage(prompt_tokens, completion_tokens)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        """A ``chat.completion.chunk`` event of the one choice."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return event({**self._head("chat.completion.chunk"), "choices": [choice]})

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> str:
        """The last chunk when the client asked ``stream_options={"include_usage": true}``: no choices."""
        return event({**self._head("chat.completion.chunk"), "choices": [],
                      "usage": usage(prompt_tokens, completion_tokens)})


def model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "llavidal"}


def stripped_pieces(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` without the answer's leading and trailing whitespace, so that the streamed pieces joined are
    exactly the answer a non-streamed request gets (which is stripped). Whitespace between pieces is held back
    until text follows it; empty pieces are dropped."""
    pending, started = "", False
    for piece in pieces:
        text = pending + piece
        if not started:
            text = text.lstrip()
            started = bool(text)
        body = text.rstrip()
        pending = text[len(body):]
        if body:
            yield body
