"""`ApiError`: a request the OpenAI-compatible server refuses, with its HTTP status and OpenAI's error body."""

from __future__ import annotations

from typing import Any

from llavidal_core.errors import LlavidalError


class ApiError(LlavidalError):
    """A refused request: ``status`` is the HTTP status (400 bad request, 404 unknown model, 413 too large,
    500 server fault), ``param`` the request field at fault (OpenAI's ``error.param``), ``code`` a short
    machine-readable reason (``error.code``)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` as OpenAI writes it; ``type`` is ``server_error`` from 500 on, else
    ``invalid_request_error``."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def bad_request(message: str, *, param: str | None = "messages", code: str | None = None) -> ApiError:
    """A 400 naming what is wrong (by default with the ``messages`` field)."""
    return ApiError(400, message, param=param, code=code)
