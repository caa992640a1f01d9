"""Parsing JSON text from a user's file, every way it can fail turned into one `ValueError` with a short reason."""

from __future__ import annotations

import json
from typing import Any


def parse_json_text(text: str) -> Any:
    """``json.loads(text)``; raises ValueError whose message is the reason alone ("nested too deeply",
    "Expecting value: line 1 column 2 (char 1)", "Exceeds the limit ... for integer string conversion") for
    malformed text, nesting deeper than Python's recursion limit, or an integer too long to convert."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
