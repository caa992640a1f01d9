"""Video ids: the one rule that names a video's features, and the original code's ``.pkl`` naming.

A video's id is its path relative to its input root, in POSIX form, without the file's last suffix:
``P03/P03T01C05/clips/clip_1.mp4`` under the TSU root is ``P03/P03T01C05/clips/clip_1`` (not the
``clip_1`` of every other camera), and Toyota Smarthome's ``Makecoffee.Pourgrains_p18_r01_v13_c03.mp4`` is
``Makecoffee.Pourgrains_p18_r01_v13_c03`` (dots kept). The root is the folder an input was found in: a
folder given to a command, the folder of a path list for the relative paths it lists, or a file's own folder
for a file given by itself (then the id is its name without the suffix). The feature store keeps an id's
features at ``<store>/<id>.safetensors``, sub-folders included.

An id is one or more ``/``-separated segments, none empty, ``.``, ``..`` or starting with ``.``; no
backslash, no NUL, not absolute (`check_video_id`).

The original LLAVIDAL / Video-ChatGPT scripts name ``<id>.pkl`` with ``filename.split('.')[0]``; that naming
(`legacy_video_id`) is used only where the original's pickles are written from videos, and collides where
the rule above does not.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PurePath

# the file extensions taken for videos wherever folders are searched for them (extraction, serve's examples)
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
    ".ogv",
})


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether a file name has a video extension (`VIDEO_EXTENSIONS`, case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def check_video_id(video_id: str) -> str:
    """``video_id`` if it is a valid id (module docstring), else a ValueError saying what is wrong with it."""
    if not isinstance(video_id, str):
        raise ValueError(f"a video id must be a string, got {type(video_id).__name__} {video_id!r}")
    problem = _id_problem(video_id)
    if problem:
        raise ValueError(f"invalid video id {video_id!r}: {problem}")
    return video_id


def video_id_for(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The id of the video file at ``path`` (module docstring): relative to ``root``, without the last suffix.

    Without ``root``, a relative path is its own id path (``"P03/x/clip_1.mp4"`` -> ``"P03/x/clip_1"``) and an
    absolute one keeps only its file name. A path outside ``root``, one going up (``..``) or one that gives no
    valid id raises ValueError naming the path.
    """
    given = os.fspath(path) or "''"
    path = Path(path)
    if root is not None:
        root = Path(root)
        if path.is_absolute() != root.is_absolute():
            path, root = path.absolute(), root.absolute()
        try:
            relative = path.relative_to(root)
        except ValueError:
            raise ValueError(f"{given}: not inside the input folder {root}, so it has no video id there") from None
    elif path.is_absolute():
        relative = PurePath(path.name)
    else:
        relative = path
    relative = PurePosixPath(relative.as_posix())
    name = relative.name
    stem = name[: name.rindex(".")] if "." in name[1:] else name
    folders = relative.parent.as_posix()
    video_id = stem if folders == "." else f"{folders}/{stem}"
    problem = _id_problem(video_id) if name else "it names no file"
    if problem:
        where = f" (under {root})" if root is not None else ""
        raise ValueError(f"{given}{where}: cannot take a video id from this path ({problem})")
    return video_id


def legacy_video_id(name: str | os.PathLike) -> str:
    """The original code's id for a video file: its name up to the FIRST dot (``a.b.mp4`` -> ``a``).

    Only for writing the original's ``<id>.pkl`` layout from videos; everything else uses `video_id_for`.
    """
    file_name = Path(name).name
    video_id = file_name.split(".")[0]
    if not video_id:
        raise ValueError(f"{name}: cannot take a video id from this file name (nothing before its first dot)")
    try:
        return check_video_id(video_id)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _id_problem(video_id: str) -> str:
    """What makes ``video_id`` invalid, or "" when it is valid."""
    if not video_id:
        return "it is empty"
    if "\\" in video_id or "\0" in video_id:
        return "it holds a backslash or a NUL character"
    if video_id.startswith("/"):
        return "it is absolute (starts with '/')"
    for segment in video_id.split("/"):
        if not segment:
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if segment.startswith("."):
            return f"its segment {segment!r} starts with '.' (hidden)"
    return ""
