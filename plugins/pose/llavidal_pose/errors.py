"""`SkeletonFormatError`: a skeleton file that cannot be read, named with its path (and line, for text)."""

from __future__ import annotations

import os

from llavidal_core.errors import LlavidalError


class SkeletonFormatError(LlavidalError, ValueError):
    """A skeleton file that cannot be read; the message starts with ``path:line:`` (or ``path:``)."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
