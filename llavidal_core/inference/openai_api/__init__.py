"""An OpenAI-compatible server for llavidal models (``llavidal serve MODEL --api``): ``/v1/chat/completions``
(streamed too) with the video as a content part, and ``/v1/models``, so OpenAI clients and evaluation
harnesses talk to a llavidal model.

- `requests`: a request's fields, generation settings and messages (the accepted content parts);
- `media`: where a video may come from (files under allowed folders, size-limited uploads, allowed hosts);
- `responses`: OpenAI's response and chunk objects;
- `app`: the FastAPI app (`build_app`), one request at a time;
- `server`: uvicorn in the foreground (`serve_api`) or a background thread (`BackgroundServer`).

Needs FastAPI and uvicorn: ``pip install 'llavidal-core[api]'``.
"""

from llavidal_core.errors import LlavidalError

try:
    from llavidal_core.inference.openai_api.app import ApiOptions, build_app
    from llavidal_core.inference.openai_api.media import VideoSources
    from llavidal_core.inference.openai_api.server import BackgroundServer, serve_api
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    if exc.name not in ("fastapi", "uvicorn", "starlette", "anyio", "pydantic", "httpx"):
        raise
    raise LlavidalError(f"the API server needs {exc.name}: pip install 'llavidal-core[api]'") from None

__all__ = ["ApiOptions", "BackgroundServer", "VideoSources", "build_app", "serve_api"]
