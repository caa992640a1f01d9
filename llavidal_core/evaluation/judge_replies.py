"""Reading a judge's reply strictly: a score dict, an option letter, or a summary, else `UnparsableReply`.

The original (ADL-X/LLAVIDAL ``evaluation/ADL-X/videochatgpt_scoring.py``) reads a score with
``ast.literal_eval(reply)['score']`` and, when ten tries fail, scores 0; its MCQ reader
(``mcq_parsing_llm.py``, ``extract_characters_regex``) takes the first capital A-E anywhere in the reply, so
"I cannot tell" reads as "I" -> no letter, "Both A and C" as A, and an empty reply as A. Here a reply that is
not what was asked for is an `UnparsableReply` (the caller asks again, then records a judge failure), never a
number or a letter.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping

MAX_SCORE = 5.0
NONE_OF_THE_OPTIONS = "Z"
"""The letter the MCQ prompt asks for when the answer matches no option (mcq_parsing_llm.py)."""

_FENCE = re.compile(r"\A```[A-Za-z]*\s*\n?(?P<body>.*?)\n?\s*```\Z", re.DOTALL)
_BEST_ANSWER = re.compile(
    r"\A(?:the\s+best\s+answer\s+is\s*:?\s*)?(?:\((?P<paren>[A-Za-z])\)|(?P<bare>[A-Za-z])(?=$|[\s.:)]))"
    r"[\s.:)]*(?P<rest>.*)\Z", re.IGNORECASE | re.DOTALL)


class UnparsableReply(ValueError):
    """A judge reply that does not hold what its prompt asked for; the message says why."""


def _unfenced(reply: str) -> str:
    """``reply`` stripped of surrounding blanks and of one surrounding Markdown code fence (```json ... ```)."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    return fenced.group("body").strip() if fenced else text


def parse_score(reply: str, maximum: float = MAX_SCORE) -> float:
    """The ``score`` of a reply that is one dict, as JSON (``{"score": 4}``) or a Python literal (``{'score': 4}``),
    optionally inside one Markdown code fence; the score a number (int or float, not a string or a bool) from 0 to
    ``maximum``. Other keys beside ``score`` are allowed. Raises `UnparsableReply` saying what is wrong.
    """
    text = _unfenced(reply or "")
    if not text:
        raise UnparsableReply("empty reply")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise UnparsableReply(f"not a JSON object or Python dict: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise UnparsableReply(f"not a dict but a {type(value).__name__}: {text[:80]!r}")
    if "score" not in value:
        raise UnparsableReply(f"no 'score' key (keys: {sorted(map(str, value))[:8]})")
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise UnparsableReply(f"the score is not a number: {score!r}")
    if not 0 <= score <= maximum:
        raise UnparsableReply(f"the score {score!r} is outside 0-{maximum:g}")
    return float(score)


def parse_option_letter(reply: str, choices: Mapping[str, str]) -> str:
    """The letter a reply to the MCQ-parsing prompt names: one of ``choices`` or `NONE_OF_THE_OPTIONS`.

    The reply is the letter alone, bare or in parentheses (``B``, ``(B)``, ``(b).``), after an optional "The best
    answer is" / "The best answer is:", followed by nothing or by that option's own text ("(B) clap"). Anything
    else (two letters, an explanation, a letter the choices lack) raises `UnparsableReply`.
    """
    text = _unfenced(reply or "").strip().strip("*").strip()
    match = _BEST_ANSWER.match(text)
    if not match:
        raise UnparsableReply(f"no option letter where the reply should start: {text[:80]!r}")
    letter = (match.group("paren") or match.group("bare")).upper()
    if letter != NONE_OF_THE_OPTIONS and letter not in choices:
        raise UnparsableReply(f"names {letter!r}, which is neither a choice ({', '.join(choices)}) nor "
                              f"{NONE_OF_THE_OPTIONS!r}")
    rest = match.group("rest").strip().rstrip(".").strip()
    option = choices.get(letter, "").strip().rstrip(".").strip()
    if rest and rest.lower() != option.lower():
        raise UnparsableReply(f"more than the letter {letter!r}: {text[:80]!r}")
    return letter


def parse_summary(reply: str) -> str:
    """The reply itself, stripped; an empty (or blank) reply raises `UnparsableReply`."""
    text = (reply or "").strip()
    if not text:
        raise UnparsableReply("empty summary")
    return text
