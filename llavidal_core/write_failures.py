"""Saving that fails says where and why: a full disk is named as such, not as a library's internal message.

``torch.save`` on a full disk raises ``RuntimeError: [enforce fail at inline_container.cc] . unexpected pos
65664 vs 65552`` and safetensors an ``IoError`` wrapped in its own error; `reporting_write_failures` turns
these, and any ``OSError``, into one `OutputWriteError` naming the folder that was being written.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import Iterator

from llavidal_core.errors import LlavidalError

NO_SPACE = "no space left on the device (the disk is full or the quota is used up)"
TOO_LARGE = "a file grew past the file-size limit (ulimit -f) or the filesystem's largest file"
REASON_BY_ERRNO = {errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE, errno.EFBIG: TOO_LARGE}
# libraries that carry no errno (safetensors' Rust I/O errors, torch's zip writer) say it in the message
REASON_BY_MESSAGE = {
    "No space left on device": NO_SPACE, "Disk quota exceeded": NO_SPACE, "File too large": TOO_LARGE,
    "unexpected pos": "a write came up short: the disk is full (or a file-size limit was reached)",
    "file write failed": "a write failed: the disk is full (or a file-size limit was reached)",
}


class OutputWriteError(LlavidalError):
    """Writing an output (a model, a checkpoint, a record) failed: a full disk, a size limit, a permission."""


def write_failure_reason(error: BaseException) -> str | None:
    """Why ``error`` stopped a write, in words, or None when it is not a failed write.

    Follows ``__cause__``/``__context__``, as libraries wrap the ``OSError`` of the write itself.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in REASON_BY_ERRNO:
            return REASON_BY_ERRNO[seen.errno]
        text = str(seen)
        for message, reason in REASON_BY_MESSAGE.items():
            if message in text:
                return f"{reason} [{text.strip()}]"
        if isinstance(seen, OSError):
            return text
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def reporting_write_failures(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Run the block; a failed write in it becomes `OutputWriteError` naming ``what`` and ``folder``.

    Errors that are not failed writes, and `LlavidalError` s, pass through unchanged.
    """
    try:
        yield
    except LlavidalError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise their own types for I/O failures
        reason = write_failure_reason(exc)
        if reason is None:
            raise
        raise OutputWriteError(f"could not write {what} to {folder}: {reason}") from exc


__all__ = ["OutputWriteError", "reporting_write_failures", "write_failure_reason"]
