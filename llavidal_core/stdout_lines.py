"""Printing lines to a stdout that its reader may close early (``llavidal features list DIR | head -1``).

`print_lines` prints until the lines run out or the reader goes away; then stdout is pointed at
``/dev/null``, so neither this process nor the interpreter's exit flush raises "Broken pipe", and the
command exits quietly: a reader that stops reading is not an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable


def print_lines(lines: Iterable[str]) -> bool:
    """Print each of ``lines`` (strings without their newline) to stdout and flush; return False, having
    silenced stdout, if its reader closed it before the end, else True."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        return False
    return True


def silence_stdout() -> None:
    """Point file descriptor 1 at ``/dev/null``: what is still buffered, or printed later, goes nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
