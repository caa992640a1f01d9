"""Atomic file writes: a temp file in the same folder, fsync'd, then ``os.replace`` over the target.

A killed writer therefore leaves either the old file or the new one, never half of one; its temp file
(``.<name>.<pid>.<random>.tmp``) is ignored by every reader.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, fsync'd, then ``os.replace``.

    On any exception, KeyboardInterrupt included, the temp file is removed and the exception re-raised;
    ``path`` then still holds whatever it held before.
    """
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    handle = open(temp_path, "xb")
    try:
        with handle:
            _write_bytes(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _write_bytes(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)
