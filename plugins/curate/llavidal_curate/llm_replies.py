"""Asking an LLM for JSON and reading the reply strictly, for the describe and qa steps.

The LLM is any judge backend of the evaluation module (`llavidal_core.evaluation.judges.make_judge`: a local
transformers chat model, or any OpenAI-compatible endpoint). Asking goes through
`llavidal_core.evaluation.judging.JudgeSession`: a SQLite cache (``OUT/llm-cache.sqlite`` by default, so a
killed run resumes without asking again) and a bounded number of attempts (1 for a greedy local model, which
would answer the same again).

A reply is read with ``json.loads``, else as a Python literal (``ast.literal_eval``: the original,
ADL-X/LLAVIDAL ``adlx_curation/step4_WS_video_desc.py`` / ``step5_QA_generation.py``, asks for "a Python
dictionary string" and reads it so); nothing is cut out of or added to it. (The original's step 5 patches
brackets into the reply with ``enforce_closing_bracket`` and loops until a reply parses; its step 4 stores
``{"error": ...}`` as the description.) A reply that never parses raises `UnparsableLLMReply`, which the step
runner records in ``OUT/errors.jsonl``; failures are cached too, so delete the cache file to ask afresh.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.judge_replies import UnparsableReply

CACHE_FILE = "llm-cache.sqlite"


class UnparsableLLMReply(LlavidalError):
    """The LLM never gave a reply in the asked format; the message holds the reason and the last reply."""


def parse_literal(reply: str) -> Any:
    """The value of a reply that is, whole, one JSON value or one Python literal; else `UnparsableReply`."""
    text = (reply or "").strip()
    if not text:
        raise UnparsableReply("empty reply")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UnparsableReply(f"neither JSON nor a Python literal: {text[:80]!r}") from None


def _pair(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise UnparsableReply(f"{where} is a {type(value).__name__}, not a dict with keys 'Q' and 'A'")
    for key in ("Q", "A"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise UnparsableReply(f"{where} has no non-empty string {key!r} (keys: {sorted(map(str, value))[:6]})")
    return {"Q": value["Q"].strip(), "A": value["A"].strip()}


def parse_qa_pair(reply: str) -> dict[str, str]:
    """``{"Q": str, "A": str}`` from a reply that is one such dict (other keys dropped); else `UnparsableReply`."""
    return _pair(parse_literal(reply), "the reply")


def parse_qa_list(reply: str) -> list[dict[str, str]]:
    """``[{"Q": str, "A": str}, ...]`` (at least one) from a reply that is such a list; else `UnparsableReply`."""
    value = parse_literal(reply)
    if not isinstance(value, list) or not value:
        raise UnparsableReply(f"not a non-empty list of question-answer dicts but {type(value).__name__}")
    return [_pair(item, f"item {index}") for index, item in enumerate(value)]


def open_llm_session(model: str, out: str | Path, *, url: str | None = None, key_env: str | None = None,
                     temperature: float = 0.0, device: str | None = None, dtype: str | None = None,
                     attempts: int = 3, cache: str | Path | None = None):
    """A `JudgeSession` over ``make_judge(model, ...)`` with its cache at ``cache`` (default
    ``OUT/llm-cache.sqlite``). Raises `LlavidalError` when the model or cache cannot be used."""
    from llavidal_core.evaluation.judge_cache import JudgeCache
    from llavidal_core.evaluation.judges import make_judge
    from llavidal_core.evaluation.judging import JudgeSession

    judge = make_judge(model, url=url, key_env=key_env, temperature=temperature, device=device, dtype=dtype)
    return JudgeSession(judge, JudgeCache(cache or Path(out) / CACHE_FILE), attempts=attempts)


def ask_json(session, task: str, fields: Mapping[str, Any], messages: Sequence[Mapping[str, str]],
             parse: Callable[[str], Any], max_tokens: int) -> Any:
    """``parse`` of the LLM's reply to ``messages`` (cached under ``task`` and ``fields``); raises
    `UnparsableLLMReply` when no attempt parses, and `JudgeUnavailableError` when the LLM cannot be reached."""
    judgement = session.judge_item(task, fields, messages, parse, max_tokens)
    if judgement.failed:
        last = judgement.replies[-1] if judgement.replies else ""
        raise UnparsableLLMReply(f"{task}: {judgement.failure}; last reply {last[:200]!r}")
    return judgement.value
