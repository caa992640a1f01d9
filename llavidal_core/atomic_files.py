"""Atomic file writes, the per-file lock that serialises read-add-rewrite updates, and temp-file clean-up.

A write goes to a temp file in the same folder (``.<name>.<pid>.<random>.tmp``), fsync'd, then ``os.replace``
over the target, so a killed writer leaves either the old file or the new one, never half of one. The writer
holds an exclusive ``flock`` on its temp file until it is renamed: a temp file nobody holds a lock on, last
modified before a run started, belongs to a writer that is gone (`remove_stale_temp_files`). Every reader
ignores hidden files, temp files and lock files (``.<name>.lock``, see `exclusive_lock`) among them.

POSIX only (``fcntl.flock``); on a network file system the locks are as good as its ``flock``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"
TEMP_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX))

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a locked temp file in the same folder, fsync'd, then ``os.replace``.

    On any exception, KeyboardInterrupt included, the temp file is removed and the exception re-raised;
    ``path`` then still holds whatever it held before.
    """
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    handle = open(temp_path, "xb")
    try:
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # "my writer is alive", for remove_stale_temp_files
            _write_bytes(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _write_bytes(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)


def lock_path_for(path: Path) -> Path:
    """The hidden lock file beside ``path``: ``dir/.<name>.lock``."""
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``'s lock file (`lock_path_for`) for the ``with`` block.

    Other processes (and other open file descriptions in this one) block until it is released; the kernel
    releases it when the holder closes it or dies. The lock file stays (deleting it would let two writers
    lock two different files); it is empty and hidden.
    """
    descriptor = os.open(lock_path_for(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def remove_stale_temp_files(folder: str | os.PathLike, *, before: float) -> list[Path]:
    """Delete the temp files under ``folder`` (sub-folders included) left by writers that are gone; return them.

    A temp file is stale when its name is one `atomic_write_bytes` gives, it was last modified at or before
    ``before`` (seconds since the epoch: pass the time your run started) and no process holds its lock.
    Temp files of writers still running, here or on another machine sharing the folder, are left alone.
    """
    removed = []
    for path in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if TEMP_NAME.fullmatch(path.name) and _remove_if_abandoned(path, before):
            removed.append(path)
    if removed:
        logger.info("%s: removed %d temp file(s) of writers that are gone", folder, len(removed))
    return removed


def _remove_if_abandoned(path: Path, before: float) -> bool:
    try:
        handle = open(path, "rb")
    except OSError:  # renamed by its writer, or removed by another cleaner, in the meantime
        return False
    with handle:
        if os.fstat(handle.fileno()).st_mtime > before:
            return False
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True
