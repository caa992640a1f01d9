"""A judge behind any OpenAI-compatible HTTP endpoint, asked through the ``openai`` client.

``base_url`` is the server's API root, the one OpenAI's client takes: ``http://127.0.0.1:11434/v1`` (ollama),
``http://127.0.0.1:8000/v1`` (vLLM, ``transformers serve``), ``http://127.0.0.1:8080/v1`` (llama.cpp's server),
``https://api.openai.com/v1``. Each reply is one ``POST {base_url}/chat/completions`` with ``model``,
``messages``, ``temperature`` and ``max_tokens``.

The key is read from an environment variable (default ``OPENAI_API_KEY``), never from the command line. Local
servers need none: when the default variable is unset a placeholder key is sent; a variable named on purpose
(``key_env``) must be set. Transient errors (rate limits, 5xx, dropped connections) are retried by the client
(`MAX_HTTP_RETRIES`, with back-off); what still fails raises `JudgeUnavailableError`, and the run stops with
every finished judgement kept in the cache.
"""

from __future__ import annotations

import logging
import os

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.judges import DEFAULT_KEY_ENV, Judge, JudgeUnavailableError

logger = logging.getLogger(__name__)

MAX_HTTP_RETRIES = 5
PLACEHOLDER_KEY = "no-key"  # what a local server that checks no key gets


def _openai():
    try:
        import openai
    except ImportError:
        raise LlavidalError("a judge URL needs the openai client: pip install 'llavidal-core[eval]'") from None
    return openai


class OpenAICompatibleJudge(Judge):
    """The model ``model`` served at ``base_url`` (see the module docstring), at ``temperature``; each request
    may take ``timeout`` seconds and is retried ``max_retries`` times on transient errors.

    Raises `LlavidalError` when ``key_env`` names an unset variable or the URL is not http(s).
    """

    def __init__(self, base_url: str, model: str, *, key_env: str | None = None, temperature: float = 0.0,
                 timeout: float = 300.0, max_retries: int = MAX_HTTP_RETRIES):
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise LlavidalError(f"judge URL {base_url!r}: expected http://HOST:PORT/v1 or https://...")
        if not model:
            raise LlavidalError("a judge URL needs the model name the server knows (--judge NAME)")
        variable = key_env or DEFAULT_KEY_ENV
        key = os.environ.get(variable)
        if not key:
            if key_env:
                raise LlavidalError(f"the judge's key variable {key_env} is not set")
            logger.debug("%s is unset: the judge at %s gets a placeholder key", variable, base_url)
            key = PLACEHOLDER_KEY
        self.key_env = variable
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = float(temperature)
        self.client = _openai().OpenAI(base_url=self.base_url, api_key=key, timeout=timeout,
                                       max_retries=max_retries)
        self.identity = f"openai-compatible {model} at {self.base_url} temperature={self.temperature:g}"

    def _reply(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        openai = _openai()
        try:
            completion = self.client.chat.completions.create(model=self.model, messages=messages,
                                                             temperature=self.temperature, max_tokens=max_tokens)
        except openai.APIConnectionError as exc:
            raise JudgeUnavailableError(f"judge {self.identity}: cannot reach the server ({exc})") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise JudgeUnavailableError(f"judge {self.identity}: the server refused the key (from "
                                        f"{self.key_env}): {exc}") from exc
        except openai.NotFoundError as exc:
            raise JudgeUnavailableError(f"judge {self.identity}: not found: no model {self.model!r} there, or "
                                        f"{self.base_url} is not the API root (often ending in /v1): {exc}") from exc
        except openai.APIStatusError as exc:
            raise JudgeUnavailableError(f"judge {self.identity}: HTTP {exc.status_code}: {exc}") from exc
        if not completion.choices:
            return ""
        return completion.choices[0].message.content or ""
