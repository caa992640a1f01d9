"""The LLM judge interface: chat messages in, the judge's reply text out; and `make_judge`, which picks a backend.

Two backends:

- `llavidal_core.evaluation.judge_local.LocalJudge`: any transformers causal LM (a folder or a Hub id), its
  chat template applied, greedy at temperature 0;
- `llavidal_core.evaluation.judge_http.OpenAICompatibleJudge`: any server speaking OpenAI's
  ``/v1/chat/completions`` (ollama, vLLM, llama.cpp's server, ``transformers serve``, OpenAI itself).

A judge's ``identity`` names the backend, the model, where it runs and how it decodes; it keys the judge cache
(`llavidal_core.evaluation.judge_cache`) and is written into every report. The original LLAVIDAL evaluation
(ADL-X/LLAVIDAL ``evaluation/ADL-X/videochatgpt_scoring.py``) asks a local Llama-3.1 through ollama at ollama's
default temperature; here the temperature is 0 unless asked otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from llavidal_core.errors import LlavidalError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class JudgeUnavailableError(LlavidalError):
    """The judge could not be asked at all (no server there, a refused key, an unknown model): the run stops.
    Unlike an unparsable reply, this is never counted as a judge failure of one item."""


class Judge(abc.ABC):
    """Something that answers chat messages. Subclasses set ``identity`` and ``deterministic`` and implement
    `_reply`; ``calls`` counts the replies asked for through `ask` (cache hits never reach a judge)."""

    identity: str = ""
    deterministic: bool = False
    """True when the same messages always get the same reply (greedy local decoding): asking again is useless."""

    def __init__(self) -> None:
        self.calls = 0

    def ask(self, messages: Sequence[Mapping[str, str]], max_tokens: int) -> str:
        """The judge's reply to ``messages`` (``[{"role": "system"|"user"|"assistant", "content": str}]``), at most
        ``max_tokens`` tokens long. Raises `JudgeUnavailableError` when the judge cannot be reached."""
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.calls += 1
        return self._reply([dict(message) for message in messages], max_tokens)

    @abc.abstractmethod
    def _reply(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        """The reply text (may be empty)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity}>"


def make_judge(model: str, *, url: str | None = None, key_env: str | None = None, temperature: float = 0.0,
               device: str | None = None, dtype: str | None = None, timeout: float = 300.0) -> Judge:
    """The judge ``model``: served at ``url`` (an OpenAI-compatible base URL, e.g. ``http://127.0.0.1:11434/v1``;
    its key read from the environment variable ``key_env``, default ``OPENAI_API_KEY``), else loaded here with
    transformers (a model folder or a Hub id, on ``device`` in ``dtype``).

    Raises ValueError for a negative temperature, `LlavidalError` naming the model or variable when it cannot be
    loaded or the named key variable is unset.
    """
    if temperature < 0:
        raise ValueError(f"the judge's temperature must be 0 or more, got {temperature}")
    if url is not None:
        from llavidal_core.evaluation.judge_http import OpenAICompatibleJudge

        return OpenAICompatibleJudge(url, model, key_env=key_env, temperature=temperature, timeout=timeout)
    if key_env is not None:
        raise ValueError("a key variable goes with a judge URL (--judge-url); a local judge needs no key")
    from llavidal_core.evaluation.judge_local import LocalJudge

    return LocalJudge(model, device=device, dtype=dtype, temperature=temperature)
