"""Stop strings: where an answer ends, the same whether it is returned whole or streamed.

Generation stops through transformers' own ``stop_strings`` (`transformers.StopStringCriteria`), which
matches the *text* the tokens spell, word-boundary markers ("▁", "Ġ") included, so "wave" stops an answer
whether the model wrote it as "▁wave", "wa"+"ve" or inside "▁waved". The decoded answer is then cut with
`cut_at_stop_strings`, in both paths: before the stop string that is completed first. The seed instead strips
its stop string with ``str.rstrip``, which removes trailing *characters* ("</s>" also eats a final "s").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)


def check_stop_strings(stop_strings: Sequence[str]) -> None:
    """Raise ``ValueError`` when a stop string is empty or not a string (an empty one would stop at once)."""
    for text in stop_strings:
        if not isinstance(text, str) or not text:
            raise ValueError(f"a stop string must be a non-empty string, got {text!r}")


def stop_string_criteria(tokenizer, stop_strings: Sequence[str]) -> list:
    """transformers' `StopStringCriteria` for ``stop_strings`` (a one-item list), or ``[]`` when there are none.

    When no token of the vocabulary can end any of the stop strings, the model cannot write them, and
    transformers' "unable to identify tokens" ``ValueError`` is turned into no criterion (logged).
    """
    from transformers import StopStringCriteria

    check_stop_strings(stop_strings)
    if not stop_strings:
        return []
    try:
        return [StopStringCriteria(tokenizer, list(stop_strings))]
    except ValueError as exc:
        if "unable to identify tokens" not in str(exc):
            raise
        logger.info("no token of the vocabulary can end the stop strings %s: the model cannot write them",
                    list(stop_strings))
        return []


def first_stop(text: str, stop_strings: Sequence[str]) -> tuple[int, int] | None:
    """``(start, end)`` character offsets of the stop string completed first in ``text``, or None.

    "Completed first" is the smallest end offset (ties: the longer stop string), so that the result for a
    prefix of ``text`` that already holds a stop string is the result for all of ``text``: a streamed answer
    is cut exactly where the whole answer is.
    """
    best: tuple[int, int] | None = None
    for stop in stop_strings:
        start = text.find(stop)
        if start < 0:
            continue
        end = start + len(stop)
        if best is None or (end, start) < (best[1], best[0]):
            best = (start, end)
    return best


def cut_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` up to (not including) the stop string completed first; all of ``text`` when none occurs."""
    found = first_stop(text, stop_strings)
    return text if found is None else text[: found[0]]


def hold_back_stop_strings(pieces: Iterable[str], stop_strings: Sequence[str]) -> Iterator[str]:
    """Pass streamed text through, cut as `cut_at_stop_strings` cuts the whole text.

    A tail of ``len(longest stop string) - 1`` characters that could begin a stop string is held back until the
    next piece shows whether it does; the stream ends at the first stop string.
    """
    if not stop_strings:
        yield from pieces
        return
    held = max(len(stop) for stop in stop_strings) - 1
    text, sent = "", 0
    for piece in pieces:
        text += piece
        found = first_stop(text, stop_strings)
        if found is not None:
            if found[0] > sent:
                yield text[sent: found[0]]
            return
        safe = len(text) - held
        if safe > sent:
            yield text[sent:safe]
            sent = safe
    if len(text) > sent:
        yield text[sent:]
