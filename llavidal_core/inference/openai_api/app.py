"""The OpenAI-compatible app over a `LlavidalPipeline`: ``POST /v1/chat/completions`` (``stream: true`` as
server-sent events, ``data: [DONE]`` last) and ``GET /v1/models``, as a FastAPI app (`build_app`).

Requests are answered one at a time: feature computation and generation run in worker threads under one lock,
so the server keeps accepting connections while the model works. An answer equals the pipeline's for the
same question, video and settings (greedy unless the request or the server asks for sampling); a streamed
answer's pieces joined equal the non-streamed answer.

Errors are OpenAI's JSON error objects: 400 for a request that cannot be answered (naming the field, message
and part), 404 for another model or path, 413 for a body or video over the limits, 500 for a fault of the
server. An error after a stream has begun comes as one ``data: {"error": ...}`` event.

``usage.prompt_tokens`` counts the prompt as the model sees it (each cue's tokens included);
``usage.completion_tokens`` counts the answer's text tokenized again (the end-of-answer token is not counted),
and ``finish_reason`` is ``"length"`` when that reaches ``max_tokens``, else ``"stop"``.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from llavidal_core.chat_messages import parse_messages
from llavidal_core.errors import LlavidalError, MissingPluginError
from llavidal_core.inference.openai_api.errors import ApiError, bad_request, error_body
from llavidal_core.inference.openai_api.media import MB, VideoSources
from llavidal_core.inference.openai_api.requests import (
    ChatCompletionRequest,
    generation_settings,
    llavidal_messages,
    parse_request,
)
from llavidal_core.inference.openai_api.responses import DONE, Completion, event, model_card, stripped_pieces
from llavidal_core.inference.pipeline import GenerationSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiOptions:
    """What the server serves and allows.

    Args:
        model_name: the model id clients send as ``model`` and ``/v1/models`` lists.
        videos: where videos may come from, and the upload limit (`VideoSources`).
        settings: the generation defaults of requests that do not set them (``None``: the pipeline's).
    """

    model_name: str
    videos: VideoSources = field(default_factory=VideoSources)
    settings: GenerationSettings | None = None


@dataclass(frozen=True)
class PreparedChat:
    """A request ready for generation: llavidal turns, the cue features ``{cue: (rows, dim)}``, and the
    prompt's length in tokens."""

    turns: list[dict[str, str]]
    features: dict[str, torch.Tensor]
    prompt_tokens: int


class ChatService:
    """A request's messages to the model's answers with one pipeline (the blocking half of the app)."""

    def __init__(self, pipeline, options: ApiOptions):
        self.pipeline = pipeline
        self.options = options
        self.settings = options.settings or pipeline.settings

    def prepare(self, request: ChatCompletionRequest) -> PreparedChat:
        """The request's turns and features (the video read, the upload or download deleted after).

        Raises:
            ApiError: 400 for messages, a video or a prompt the model cannot take (naming the problem), 413 for
                a video over the limit, 500 when the server has no encoder for the video's cue.
        """
        try:
            with ExitStack() as stack:
                messages = llavidal_messages(
                    request.messages, self.pipeline.video_cues(),
                    lambda reference, where: stack.enter_context(self.options.videos.local_file(reference, where)))
                parsed = parse_messages(messages, self.pipeline.processor.cues)
                features = self.pipeline.compute_features([parsed.cue_inputs])[0] if parsed.cue_inputs else {}
            features = {cue: tensor.reshape(-1, tensor.shape[-1]) for cue, tensor in features.items()}
            prompt = self.pipeline.processor([parsed.turns], [features], add_generation_prompt=True)
        except ApiError:
            raise
        except MissingPluginError as exc:
            raise ApiError(500, str(exc), code="no_encoder") from exc
        except (LlavidalError, ValueError, OSError) as exc:  # a video that cannot be read, a malformed conversation
            raise bad_request(str(exc)) from exc
        return PreparedChat(parsed.turns, features, int(prompt["input_ids"].shape[1]))

    def answers(self, chat: PreparedChat, settings: GenerationSettings, seed: int | None) -> list[str]:
        """The answers (``settings.num_return_sequences`` of them), sampled after ``torch.manual_seed(seed)``
        when a seed is given."""
        if seed is not None:
            torch.manual_seed(seed)
        try:
            answers = self.pipeline.generate_answers([chat.turns], [chat.features], settings)[0]
        except ValueError as exc:  # settings transformers refuses
            raise bad_request(str(exc), param=None) from exc
        return answers if isinstance(answers, list) else [answers]

    def stream(self, chat: PreparedChat, settings: GenerationSettings, seed: int | None):
        """The answer's pieces as they are generated, stripped as the non-streamed answer is."""
        if seed is not None:
            torch.manual_seed(seed)
        return stripped_pieces(self.pipeline.stream_answer(chat.turns, chat.features, settings))

    def count_tokens(self, text: str) -> int:
        return len(self.pipeline.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def finish_reason(self, tokens: int, settings: GenerationSettings) -> str:
        return "length" if tokens >= settings.max_new_tokens else "stop"


async def read_body(request: Request, limit: int, upload_limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to exceed ``limit`` bytes."""
    def too_large(size: int) -> ApiError:
        return ApiError(413, f"the request is more than {limit / MB:.1f} MB (its size: {size / MB:.1f} MB so far); "
                             f"this server takes videos of at most {upload_limit / MB:g} MB (--api-max-upload-mb)",
                        code="request_too_large")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(pipeline, options: ApiOptions) -> FastAPI:
    """The FastAPI app serving ``pipeline`` as ``options.model_name`` (module docstring)."""
    service = ChatService(pipeline, options)
    lock = anyio.Lock()
    started = int(time.time())
    app = FastAPI(title="llavidal", summary="OpenAI-compatible chat completions about videos",
                  docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        logger.info("%s %s: %d %s", request.method, request.url.path, exc.status, exc.message)
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = {404: f"no route {request.method} {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(error_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(500, f"the server failed: {type(exc).__name__}: {exc}"), status_code=500)

    def the_model(name: str) -> dict[str, Any]:
        if name != options.model_name:
            raise ApiError(404, f"the model {name!r} does not exist: this server serves {options.model_name!r}",
                           param="model", code="model_not_found")
        return model_card(name, started)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(options.model_name, started)]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return the_model(name)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request, options.videos.max_request_bytes, options.videos.max_upload_bytes)
        chat = parse_request(body)
        the_model(chat.model)
        settings = generation_settings(chat, service.settings)
        completion = Completion(options.model_name)
        async with lock:
            prepared = await run_in_threadpool(service.prepare, chat)
            if not chat.stream:
                answers = await run_in_threadpool(service.answers, prepared, settings, chat.seed)
        if chat.stream:
            return StreamingResponse(stream_events(chat, prepared, settings, completion),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        tokens = [service.count_tokens(answer) for answer in answers]
        reasons = [service.finish_reason(count, settings) for count in tokens]
        return completion.body(answers, reasons, prepared.prompt_tokens, sum(tokens))

    async def stream_events(chat: ChatCompletionRequest, prepared: PreparedChat, settings: GenerationSettings,
                            completion: Completion):
        """The answer as ``chat.completion.chunk`` events; a client that goes away frees the lock at once (its
        generation runs to its end in a worker thread)."""
        async with lock:
            yield completion.chunk({"role": "assistant", "content": ""})
            pieces = []
            try:
                iterator = await run_in_threadpool(service.stream, prepared, settings, chat.seed)
                while (piece := await run_in_threadpool(next, iterator, None)) is not None:
                    pieces.append(piece)
                    yield completion.chunk({"content": piece})
            except Exception as exc:  # noqa: BLE001 - the status is sent already: an error event ends the stream
                logger.error("a streamed answer failed", exc_info=exc)
                status = 400 if isinstance(exc, (LlavidalError, ValueError)) else 500
                yield event(error_body(status, f"the answer failed: {type(exc).__name__}: {exc}"))
                return
            tokens = service.count_tokens("".join(pieces))
            yield completion.chunk({}, service.finish_reason(tokens, settings))
            if chat.include_usage:
                yield completion.usage_chunk(prepared.prompt_tokens, tokens)
        yield DONE

    return app
