"""What every ``llavidal extract <cue>`` command shares: inputs, ids, shards, the errors log, exit codes.

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
- An input that cannot be read is one JSON line in ``OUT/errors.jsonl``; the others are written.
- Exit codes: 0 all written (or already there), 3 some failed, 2 usage error.

torch is imported only by the functions that need it, so command modules can import this one freely.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_core.video_ids import legacy_video_id, video_id_for

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
ERRORS_FILE = "errors.jsonl"
PATH_LIST_SUFFIXES = (".txt", ".lst", ".list")


class ExtractionUsageError(LlavidalError):
    """A command line that cannot run as given (exit code 2), found before anything is written."""


def run_reporting_usage_errors(run: Callable[..., int], *args) -> int:
    """``run(*args)``; an `ExtractionUsageError` is printed as one ``llavidal: error:`` line, exit code 2."""
    try:
        return run(*args)
    except ExtractionUsageError as exc:
        print(f"llavidal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


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
    that give it two ids, it is an `ExtractionUsageError`."""
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
                    raise ExtractionUsageError(
                        f"{path}:{number}: {line!r} goes up out of the list's folder; a relative path in a list "
                        "is taken from the list's folder, which is also the root of its video id (put the list "
                        "above the files it names, or write absolute paths)")
                if not (listed if listed.is_absolute() else path.parent / listed).is_file():
                    raise ExtractionUsageError(f"{path}:{number}: no such file {line!r}")
                if listed.is_absolute():
                    _add_input(found, _given_directly(listed))
                else:
                    root = path.parent.resolve()
                    _add_input(found, InputFile(root / listed, root))
        elif path.is_file():
            _add_input(found, _given_directly(path))
        else:
            raise ExtractionUsageError(f"{item}: no such file or folder")
    return sorted(found.values(), key=lambda found_input: str(found_input.path))


def _given_directly(path: Path) -> InputFile:
    """A file named by itself: its own folder is its root, so its id is its name without the suffix."""
    root = path.parent.resolve()
    return InputFile(root / path.name, root)


def _add_input(found: dict[Path, InputFile], candidate: InputFile) -> None:
    key = candidate.path.resolve()
    earlier = found.setdefault(key, candidate)
    if earlier.root != candidate.root and _id_or_none(earlier) != _id_or_none(candidate):
        raise ExtractionUsageError(
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
    dot). A path that gives no valid id, and two inputs with one id, are an `ExtractionUsageError` naming them.
    """
    by_id: dict[str, Path] = {}
    for found_input in inputs:
        if not isinstance(found_input, InputFile):
            found_input = _given_directly(Path(found_input))
        try:
            video_id = legacy_video_id(found_input.path.name) if legacy else found_input.video_id
        except ValueError as exc:
            raise ExtractionUsageError(str(exc)) from exc
        if video_id in by_id:
            naming = ("the original's .pkl naming: the file name up to its first dot" if legacy
                      else "its path under the input folder or list, without the file suffix")
            raise ExtractionUsageError(
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
        raise ExtractionUsageError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc


def shard_for_rank(items: list, rank: int, world_size: int) -> list:
    """Every ``world_size``-th item starting at ``rank`` (the inputs must already be sorted)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ExtractionUsageError(f"RANK={rank} WORLD_SIZE={world_size} is not a valid process slot")
    return items[rank::world_size]


def has_cue(store, video_id: str, cue: str) -> bool:
    """Whether the video's file already holds the cue (an unreadable file counts as not done: it is rewritten)."""
    try:
        return store.has(video_id, cue)
    except LlavidalError:
        return False


def record_failure(out: Path, path: str, video_id: str, reason: str, rank: int) -> None:
    """Append one JSON line to ``OUT/errors.jsonl`` (one ``write`` on an O_APPEND file: ranks may share it)."""
    line = json.dumps({"path": path, "video_id": video_id, "error": reason, "rank": rank,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
    descriptor = os.open(Path(out) / ERRORS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode("utf-8"))
    finally:
        os.close(descriptor)


def report_summary(prefix: str, written: int, skipped: int, failed: int, out: Path) -> int:
    """Print ``PREFIX: N written, M already done, K failed`` (naming the errors log when K > 0) on stderr;
    return the exit code those counts give (0, or 3 when something failed)."""
    summary = f"{prefix}: {written} written, {skipped} already done, {failed} failed"
    if failed:
        summary += f" (see {Path(out) / ERRORS_FILE})"
    print(summary, file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def choose_device(requested: str | None, local_rank: int):
    """``requested``, or this process's GPU (``LOCAL_RANK``) when there is one, else the CPU."""
    import torch

    if requested in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ExtractionUsageError(f"--device {requested}: CUDA is not available here")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return device


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
