"""Telling a model folder from a Hub repo id, so that a missing folder is reported as one.

transformers' ``from_pretrained`` takes any string that is not an existing folder for a Hub repo id, so a
mistyped ``./models/llavidal`` comes back as "Repo id must be in the form ...". `model_location` says
"no such model folder" for anything that can only be a path, and leaves real Hub ids to the Hub.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llavidal_core.errors import LlavidalError

# "name" or "owner/name": letters, digits, "-", "_", "."; neither part starts with "." or "-" (huggingface_hub's rule)
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


def looks_like_path(model_id: str) -> bool:
    """True when ``model_id`` can only be a local path, never a Hub repo id.

    That is: it starts with ".", "/" or "~", holds a backslash, a space or more than one "/", has ".." or a
    trailing "." / "-", or its first part is an existing folder here ("models/llavidal" with a ``models``
    folder in the working directory).
    """
    if not _HUB_ID.fullmatch(model_id) or ".." in model_id or model_id.endswith((".", "-")):
        return True
    first, separator, _ = model_id.partition("/")
    return bool(separator) and Path(first).is_dir()


def model_location(model_id: str | Path) -> str:
    """``model_id`` as ``from_pretrained`` should get it: an existing model folder, or a Hub repo id.

    A leading "~" is expanded. Raises `LlavidalError` when ``model_id`` is empty, and naming the path when it
    looks like a path (see `looks_like_path`) but is no folder ("no such model folder"), is a file, or is a
    folder without ``config.json``.
    """
    text = os.path.expanduser(str(model_id))
    if not text.strip():
        raise LlavidalError("no model given: the model folder or Hub id is empty")
    path = Path(text)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LlavidalError(f"{text}: not a model folder (it has no config.json)")
        return text
    if path.exists():
        raise LlavidalError(f"{text}: is a file; give the model folder that holds config.json")
    if looks_like_path(text):
        raise LlavidalError(f"{text}: no such model folder")
    return text


@contextmanager
def hub_failures_named(model_id: str) -> Iterator[None]:
    """Turn an ``OSError`` from loading ``model_id`` as a Hub repo into a `LlavidalError` that also says no
    folder of that name exists here (errors from an existing folder pass unchanged)."""
    try:
        yield
    except OSError as exc:
        if Path(model_id).is_dir():
            raise
        raise LlavidalError(f"{model_id}: no model folder of that name here, and the Hub repo {model_id!r} could "
                            f"not be loaded: {exc}") from exc
