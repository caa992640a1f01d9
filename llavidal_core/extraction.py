"""The bookkeeping of ``llavidal extract <cue>`` (`llavidal_core.extraction_engine` runs it): inputs, ids,
shards, the errors log, exit codes.

- Inputs are files (taken as given), folders (searched recursively for the files a cue accepts) and text
  files listing paths (``.txt``/``.lst``/``.list``: one path per line, ``#`` comments, relative paths taken
  from the list's folder); the result is sorted and without repeats.
- Each input keeps the root its id is taken from (`llavidal_core.video_ids`): the folder given, the list's
  folder for the relative paths it lists, the file's own folder for a file given directly or an absolute
  path in a list. The id is the path under that root without the last suffix, so
  ``TSU/P03/P03T01C05/clips/clip_1.mp4`` found in ``TSU/`` is ``P03/P03T01C05/clips/clip_1``; two inputs
  with one id are a usage error naming both. ``--format videochatgpt`` (the original's ``<id>.pkl``) names
  outputs the original's way instead, the file name up to its first dot.
- ``RANK``/``WORLD_SIZE`` (as torchrun sets them) give each process every ``WORLD_SIZE``-th input.
- An input that cannot be read, or whose features cannot be stored (NaN or inf in them, a feature file of
  another format in the way), is one JSON line in ``OUT/errors.jsonl``; the others are written. A failed
  input is retried on every rerun, but its line is written once per (path, error, llavidal version): reruns
  that fail the same way add nothing (`record_failure`).
- A corrupt feature file already in ``OUT`` counts as not done; its video is extracted again and the file
  replaced (with a warning naming it).
- At the start of a run, temp files in ``OUT`` left by killed writers are removed (`prepare_output_folder`).
- Exit codes: 0 all written (or already there), 3 some failed, 2 usage error.

torch is imported only by the functions that need it, so command modules can import this one freely.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llavidal_core import __version__
from llavidal_core.atomic_files import remove_stale_temp_files
from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.video_ids import legacy_video_id, video_id_for

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
ERRORS_FILE = "errors.jsonl"
PATH_LIST_SUFFIXES = (".txt", ".lst", ".list")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputFile:
    """One input file (absolute) and the folder its video id is taken relative to."""

    path: Path
    root: Path

    @property
    def video_id(self) -> str:
        """`video_id_for` of the file under its root (a ValueError for a path that gives no valid id)."""
        return video_id_for(self.path, self.root)


def collect_inputs(inputs: Iterable[str | os.PathLike], accepts: Callable[[Path], bool]) -> list[InputFile]:
    """Files as given, folders searched recursively for files ``accepts`` takes, path lists read; each with
    its root (module docstring), sorted by path. A file reached twice counts once; reached under two roots
    that give it two ids, it is an `UsageError`."""
    found: dict[Path, InputFile] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            root = path.resolve()
            for candidate in path.rglob("*"):
                relative = candidate.relative_to(path)
                if (not any(part.startswith(".") for part in relative.parts) and candidate.is_file()
                        and accepts(candidate)):
                    _add_input(found, InputFile(root / relative, root))
        elif path.is_file() and path.suffix.lower() in PATH_LIST_SUFFIXES:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                listed = Path(line)
                if not listed.is_absolute() and ".." in listed.parts:
                    raise UsageError(
                        f"{path}:{number}: {line!r} goes up out of the list's folder; a relative path in a list "
                        "is taken from the list's folder, which is also the root of its video id (put the list "
                        "above the files it names, or write absolute paths)")
                if not (listed if listed.is_absolute() else path.parent / listed).is_file():
                    raise UsageError(f"{path}:{number}: no such file {line!r}")
                if listed.is_absolute():
                    _add_input(found, _given_directly(listed))
                else:
                    root = path.parent.resolve()
                    _add_input(found, InputFile(root / listed, root))
        elif path.is_file():
            _add_input(found, _given_directly(path))
        else:
            raise UsageError(f"{item}: no such file or folder")
    return sorted(found.values(), key=lambda found_input: str(found_input.path))


def _given_directly(path: Path) -> InputFile:
    """A file named by itself: its own folder is its root, so its id is its name without the suffix."""
    root = path.parent.resolve()
    return InputFile(root / path.name, root)


def _add_input(found: dict[Path, InputFile], candidate: InputFile) -> None:
    key = candidate.path.resolve()
    earlier = found.setdefault(key, candidate)
    if earlier.root != candidate.root and _id_or_none(earlier) != _id_or_none(candidate):
        raise UsageError(
            f"{candidate.path} is given twice with two video ids, {_id_or_none(earlier)!r} (under {earlier.root}) "
            f"and {_id_or_none(candidate)!r} (under {candidate.root}); give it once")


def _id_or_none(found_input: InputFile) -> str | None:
    try:
        return found_input.video_id
    except ValueError:
        return None


def index_by_video_id(inputs: Iterable[InputFile | str | os.PathLike], *, legacy: bool = False) -> dict[str, Path]:
    """``{video_id: path}`` of `collect_inputs`'s result (a bare path counts as a file given directly).

    With ``legacy``, ids are the original's .pkl naming (`legacy_video_id`: the file name up to its first
    dot). A path that gives no valid id, and two inputs with one id, are an `UsageError` naming them.
    """
    by_id: dict[str, Path] = {}
    for found_input in inputs:
        if not isinstance(found_input, InputFile):
            found_input = _given_directly(Path(found_input))
        try:
            video_id = legacy_video_id(found_input.path.name) if legacy else found_input.video_id
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if video_id in by_id:
            naming = ("the original's .pkl naming: the file name up to its first dot" if legacy
                      else "its path under the input folder or list, without the file suffix")
            raise UsageError(
                f"two inputs have the video id {video_id!r} ({naming}): {by_id[video_id]} and "
                f"{found_input.path}; rename one or extract them in separate runs")
        by_id[video_id] = found_input.path
    return by_id


def distributed_slot() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment, (0, 1, 0) without it."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise UsageError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc


def shard_for_rank(items: list, rank: int, world_size: int) -> list:
    """Every ``world_size``-th item starting at ``rank`` (the inputs must already be sorted)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"RANK={rank} WORLD_SIZE={world_size} is not a valid process slot")
    return items[rank::world_size]


def has_cue(store, video_id: str, cue: str) -> bool:
    """Whether the video's file already holds the cue (an unreadable file counts as not done: it is rewritten)."""
    try:
        return store.has(video_id, cue)
    except LlavidalError:
        return False


def prepare_output_folder(out: str | os.PathLike) -> Path:
    """Create ``OUT`` if missing and remove the temp files under it whose writers are gone: last modified before
    this call and locked by no process (`llavidal_core.atomic_files.remove_stale_temp_files`), so the temp
    files of other ranks still writing are kept. Returns ``OUT``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out, before=time.time())
    return out


def record_failure(out: Path, path: str, video_id: str, reason: str, rank: int) -> bool:
    """Append one JSON line to ``OUT/errors.jsonl`` unless the file already has one for this (``path``,
    ``reason``, llavidal version); return whether it appended.

    The check and the append happen under an exclusive ``flock`` on the log, so ranks may share it; lines
    already read are remembered, so a run with many failures reads the log once.
    """
    record = {"path": path, "video_id": video_id, "error": reason, "rank": rank, "llavidal_version": __version__,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    errors_path = Path(out) / ERRORS_FILE
    with open(errors_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        known = _known_failures(errors_path, handle)
        key = _failure_key(record)
        if key in known.keys:
            return False
        handle.write(_line_start(handle) + json.dumps(record).encode("utf-8") + b"\n")
        handle.flush()
        known.keys.add(key)
        known.offset = handle.tell()
    return True


@dataclass
class _KnownFailures:
    """The (path, error, version) keys of an errors log, read up to ``offset``."""

    offset: int
    keys: set


_KNOWN_FAILURES: dict[Path, _KnownFailures] = {}


def _line_start(handle) -> bytes:
    """A newline when the log ends in a line a killed writer left unfinished, so the next record starts afresh."""
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        return b""
    handle.seek(size - 1)
    return b"" if handle.read(1) == b"\n" else b"\n"


def _failure_key(record: dict) -> tuple:
    return record.get("path"), record.get("error"), record.get("llavidal_version")


def _known_failures(errors_path: Path, handle) -> _KnownFailures:
    """The keys in the log open (and locked) as ``handle``, reading only what was appended since last time."""
    size = os.fstat(handle.fileno()).st_size
    known = _KNOWN_FAILURES.get(errors_path.resolve())
    if known is None or known.offset > size:  # first look, or the log was replaced or cut
        known = _KNOWN_FAILURES[errors_path.resolve()] = _KnownFailures(0, set())
    handle.seek(known.offset)
    for line in handle.read(size - known.offset).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            logger.warning("%s: a line that is not JSON (%.60r) is ignored", errors_path, line)
            continue
        if isinstance(record, dict):
            known.keys.add(_failure_key(record))
    known.offset = size
    return known


class ExitAgreement:
    """Under torchrun (``MASTER_ADDR`` set, ``WORLD_SIZE`` > 1): a gloo group whose only job is to make every
    rank wait for the others at the end and exit with the same code (3 if any rank had failures). Without it,
    torchrun would stop the ranks still working as soon as one rank exits with 3. Ranks started by hand (no
    ``MASTER_ADDR``) run independently."""

    def __init__(self, world_size: int) -> None:
        self.active = world_size > 1 and "MASTER_ADDR" in os.environ
        if self.active:
            import datetime

            import torch.distributed as dist

            dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))

    def exit_code(self, code: int) -> int:
        if not self.active:
            return code
        import torch
        import torch.distributed as dist

        worst = torch.tensor([code])
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        dist.destroy_process_group()
        return int(worst.item())
