"""Asking a judge for one judgement: the cache first, then a bounded number of attempts, each reply read strictly.

A reply that never parses is a judge failure: `Judgement.value` is None and `Judgement.failure` says why, with
every reply kept; callers report failures apart and never turn them into a score. (The original,
ADL-X/LLAVIDAL ``evaluation/ADL-X/videochatgpt_scoring.py``, tries ten times and then silently scores 0.)
A deterministic judge (greedy local decoding) is asked once: asking it again would get the same reply.
Failures are cached like scores, so a rerun asks nothing again; delete the cache file to ask afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llavidal_core.evaluation.judge_cache import JudgeCache, judgement_key
from llavidal_core.evaluation.judge_replies import UnparsableReply
from llavidal_core.evaluation.judges import Judge

DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True)
class Judgement:
    """What a judge said about one item: ``value`` (a score, a letter, a summary) or None with ``failure``."""

    value: Any
    replies: tuple[str, ...]
    failure: str | None = None
    cached: bool = False

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def to_dict(self) -> dict:
        return {"value": self.value, "replies": list(self.replies), "failure": self.failure}


class JudgeSession:
    """A judge, its cache and the number of ``attempts`` per judgement (1 for a deterministic judge).

    ``cache_hits`` counts the judgements read from the cache; ``judge.calls`` the replies asked for.
    """

    def __init__(self, judge: Judge, cache: JudgeCache, attempts: int = DEFAULT_ATTEMPTS):
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.judge = judge
        self.cache = cache
        self.attempts = 1 if judge.deterministic else attempts
        self.cache_hits = 0

    def judge_item(self, task: str, fields: Mapping[str, Any], messages: Sequence[Mapping[str, str]],
                   parse: Callable[[str], Any], max_tokens: int) -> Judgement:
        """The judgement of ``messages`` for ``task`` about ``fields``: from the cache, else asked up to
        ``attempts`` times until ``parse`` (which raises `UnparsableReply` for a bad reply) accepts a reply.

        Raises `JudgeUnavailableError` when the judge cannot be reached (nothing is cached then).
        """
        key = judgement_key(self.judge.identity, task, fields, messages, max_tokens)
        stored = self.cache.get(key)
        if stored is not None:
            self.cache_hits += 1
            return Judgement(stored["value"], tuple(stored["replies"]), stored["failure"], cached=True)
        replies, reasons = [], []
        judgement = None
        for _ in range(self.attempts):
            reply = self.judge.ask(messages, max_tokens)
            replies.append(reply)
            try:
                judgement = Judgement(parse(reply), tuple(replies))
                break
            except UnparsableReply as exc:
                reasons.append(str(exc))
        if judgement is None:
            judgement = Judgement(None, tuple(replies), f"no parsable reply in {len(replies)} attempt(s): "
                                                        f"{reasons[-1]}")
        self.cache.put(key, self.judge.identity, task, dict(fields), judgement.to_dict())
        return judgement
