"""Every judgement kept on disk, so that a rerun asks the judge nothing twice and a killed run resumes.

One SQLite file (stdlib ``sqlite3``) with one row per judgement, keyed by the SHA-256 of (judge identity, task,
the task's fields, the messages sent, the reply length allowed): the task is a criterion ("correctness", ...),
"summary" or "mcq_letter"; the fields are what the judgement is about (question, reference, prediction ...).
The messages are part of the key so that a changed prompt is asked anew. Each row is committed as soon as it is
written, so a run killed at any point keeps everything judged before. The row holds the outcome (a value, or the
failure with every reply the judge gave) as JSON.

Raises `JudgeCacheError` naming the file when it cannot be opened or is not a judge cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError

SCHEMA = ("CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, judge TEXT NOT NULL, task TEXT NOT NULL, "
          "request TEXT NOT NULL, outcome TEXT NOT NULL, created REAL NOT NULL)")


class JudgeCacheError(LlavidalError):
    """The judge cache file cannot be used."""


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/llavidal/judge-cache.sqlite`` (``~/.cache/...`` when the variable is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "llavidal" / "judge-cache.sqlite"


def judgement_key(judge: str, task: str, fields: Mapping[str, Any], messages: Sequence[Mapping[str, str]],
                  max_tokens: int) -> str:
    """The hex SHA-256 of everything a judgement depends on (canonical JSON: sorted keys, UTF-8)."""
    payload = json.dumps({"judge": judge, "task": task, "fields": fields, "messages": list(messages),
                          "max_tokens": max_tokens}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgeCache:
    """The judgements stored in the SQLite file ``path`` (made, with its folder, when missing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute(SCHEMA)
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise JudgeCacheError(f"{self.path}: cannot be used as the judge cache ({exc})") from None

    def get(self, key: str) -> dict | None:
        """The outcome stored under ``key``, or None."""
        try:
            row = self._db.execute("SELECT outcome FROM judgements WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise JudgeCacheError(f"{self.path}: cannot be read ({exc})") from None
        return None if row is None else json.loads(row[0])

    def put(self, key: str, judge: str, task: str, request: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Store ``outcome`` (JSON-able) under ``key``, with the judge, task and request for people reading the
        file; committed at once."""
        try:
            self._db.execute("INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?)",
                             (key, judge, task, json.dumps(request, ensure_ascii=False),
                              json.dumps(outcome, ensure_ascii=False), time.time()))
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise JudgeCacheError(f"{self.path}: cannot be written ({exc})") from None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
