"""An OpenAI chat completion request read for llavidal: its fields checked, its generation settings, and its
messages as llavidal's messages (`llavidal_core.chat_messages`) with the video as a local file.

Content parts (a message's content may also be one string):

- ``{"type": "text", "text": "..."}``
- ``{"type": "video_url", "video_url": {"url": URL}}`` (as vLLM and SGLang take it; ``"video_url": URL`` too)
- ``{"type": "video", "video": URL}`` (transformers' style; ``"path"`` or ``"url"`` instead of ``"video"``)

where URL is a path, ``file://`` URL, ``data:video/...;base64`` upload or http(s) URL, as
`llavidal_core.inference.openai_api.media` allows. One video per request, in a user message. The video part
stands for every cue of the model that reads video files (``video``, ``object``): each gets the video, and
their placeholders are written where the part is, in the model's cue order, as ``LlavidalPipeline(video=...)``
does, so ``[text, video]`` prompts exactly as ``pipe(video=..., question=text)``.

Roles: ``user`` and ``assistant`` (earlier answers). ``system``/``developer`` messages are refused (400):
llavidal models are prompted with the system text of their training template, which the pipeline keeps.
Image parts, tool calls, logprobs, penalties and JSON response formats are refused (400) rather than ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llavidal_core.inference.openai_api.errors import bad_request
from llavidal_core.inference.pipeline import GenerationSettings
from llavidal_core.inference.stopping import check_stop_strings

MAX_CHOICES = 16
IMAGE_PARTS = ("image_url", "image", "input_image")
VIDEO_PARTS = ("video_url", "video")
# fields a client may send that change the answer in ways llavidal does not do: refused unless at their default
UNSUPPORTED = {
    "tools": None, "functions": None, "logprobs": False, "top_logprobs": 0, "logit_bias": None,
    "presence_penalty": 0, "frequency_penalty": 0, "audio": None, "prediction": None,
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of ``POST /v1/chat/completions`` the server reads; others (``user``, ``metadata`` ...) are
    kept in ``model_extra`` and ignored unless listed in ``UNSUPPORTED``."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def parse_request(body: bytes) -> ChatCompletionRequest:
    """The request in ``body`` (JSON), checked.

    Raises:
        ApiError: 400 for JSON that is not a chat completion request, naming the first wrong field and why, or
            for a field llavidal does not support (tools, logprobs, penalties, a JSON response format ...).
    """
    try:
        request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise bad_request(f"{field + ': ' if field else ''}{first['msg']}", param=field) from None
    for name, default in UNSUPPORTED.items():
        value = (request.model_extra or {}).get(name)
        if value is not None and value != default and value not in ([], {}):
            raise bad_request(f"{name} is not supported by llavidal's server", param=name, code="unsupported")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise bad_request(f"response_format {request.response_format.get('type')!r} is not supported: llavidal "
                          "answers in plain text", param="response_format", code="unsupported")
    if request.modalities and set(request.modalities) != {"text"}:
        raise bad_request("modalities: llavidal answers in text only", param="modalities", code="unsupported")
    return request


def generation_settings(request: ChatCompletionRequest, defaults: GenerationSettings) -> GenerationSettings:
    """``defaults`` (the server's: greedy unless started with ``--temperature``) with the request's choices.

    ``max_completion_tokens`` (or the older ``max_tokens``) is ``max_new_tokens``; ``temperature`` 0 is greedy
    decoding and above 0 sampling (with ``top_p``); ``n`` > 1 needs sampling and no streaming.

    Raises:
        ApiError: 400 naming the field: an empty stop string, ``n`` > 1 with greedy decoding or ``stream``.
    """
    chosen: dict[str, Any] = {}
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        chosen["max_new_tokens"] = max_tokens
    if request.temperature is not None:
        chosen["do_sample"] = request.temperature > 0
        if request.temperature > 0:
            chosen["temperature"] = request.temperature
    if request.top_p is not None:
        chosen["top_p"] = request.top_p
    if request.stop is not None:
        stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop)
        try:
            check_stop_strings(stop)
        except ValueError as exc:
            raise bad_request(f"stop: {exc}", param="stop") from None
        chosen["stop"] = stop
    settings = defaults.with_overrides(**chosen)
    if request.choices > 1:
        if request.stream:
            raise bad_request("n: a streamed answer has one choice; ask with n=1 or without stream", param="n")
        if not settings.do_sample:
            raise bad_request("n: more than one choice needs sampling (a temperature above 0); greedy decoding "
                              "gives one answer", param="n")
        settings = settings.with_overrides(num_return_sequences=request.choices)
    return settings


def _video_reference(part: Mapping[str, Any], kind: str, where: str) -> str:
    value = part.get("video_url") if kind == "video_url" else next(
        (part[key] for key in ("video", "path", "url") if part.get(key) is not None), None)
    if isinstance(value, Mapping):
        value = value.get("url")
    if not isinstance(value, str) or not value.strip():
        example = '{"type": "video_url", "video_url": {"url": "file:///abs/clip.mp4"}}'
        raise bad_request(f"{where}: the {kind} part has no URL or path; write e.g. {example}")
    return value


def llavidal_messages(messages: Sequence[Any], video_cues: Sequence[str],
                      open_video: Callable[[str, str], Path]) -> list[dict[str, Any]]:
    """The request's messages as llavidal's: each video part replaced by one ``{"type": cue, "path": file}``
    part per cue of ``video_cues`` (the model's cues that read video files, in its cue order).

    ``open_video(reference, where)`` turns the video's URL or path into a local file (it is called once, after
    every message has been checked, so a malformed request downloads nothing).

    Raises:
        ApiError: 400 naming the message and part: a role or part type that is not supported, a video outside
            a user message, more than one video, a video for a model without a video cue; and what
            ``open_video`` raises.
    """
    converted: list[dict[str, Any]] = []
    videos: list[tuple[str, list, str]] = []  # where, the parts holding it (at its slot None), its reference
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role in ("system", "developer"):
            raise bad_request(f"message {index}: {role} messages are not supported: a llavidal model is prompted "
                              "with the system text of its training template; send user and assistant messages")
        if role not in ("user", "assistant"):
            raise bad_request(f"message {index}: the role {role!r} is not supported; use user or assistant "
                              "(tool calls are not supported)")
        content = message.get("content")
        if isinstance(content, str):
            converted.append({"role": role, "content": content})
            continue
        if not isinstance(content, list) or not content:
            raise bad_request(f"message {index}: content must be a string or a non-empty list of parts")
        parts: list[Any] = []
        for number, part in enumerate(content):
            where = f"message {index}, part {number}"
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise bad_request(f"{where}: a text part needs a string 'text'")
                parts.append({"type": "text", "text": part["text"]})
            elif kind in VIDEO_PARTS:
                if role != "user":
                    raise bad_request(f"{where}: a video belongs in a user message, not an {role} message")
                videos.append((where, parts, _video_reference(part, kind, where)))
                parts.append(None)
            elif kind in IMAGE_PARTS:
                raise bad_request(f"{where}: image parts are not supported: a llavidal model answers questions "
                                  "about videos; send a video_url part")
            else:
                raise bad_request(f"{where}: the part type {kind!r} is not supported; use text, video_url or video")
        converted.append({"role": role, "content": parts})
    if len(videos) > 1:
        raise bad_request(f"the request has {len(videos)} videos ({'; '.join(where for where, _, _ in videos)}); a "
                          "llavidal model answers about one video per conversation")
    if videos and not video_cues:
        raise bad_request("the model has no cue that reads videos, so it cannot take a video part")
    for where, parts, reference in videos:
        path = str(open_video(reference, where))
        slot = parts.index(None)
        parts[slot:slot + 1] = [{"type": cue, "path": path} for cue in video_cues]
    return converted
