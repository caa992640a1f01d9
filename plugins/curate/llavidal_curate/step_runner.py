"""The per-video runner every curation and preparation step shares: shard, skip what is done, run, log failures.

Built on the core's bookkeeping (`llavidal_core.extraction`): ``RANK``/``WORLD_SIZE`` (torchrun's) give each
process every ``WORLD_SIZE``-th item (`distributed_slot`, `shard_for_rank`); an item whose outputs all exist
is skipped, so a killed run rerun redoes only what it had not finished; an item whose work raises is one
JSON line in ``OUT/errors.jsonl`` (`record_failure`, once per path/error/version) and the others go on;
temp files of killed writers are removed at the start (`prepare_output_folder`); under torchrun every rank
waits for the others and exits with the same code (`ExitAgreement`).

Exit codes: 0 every item written (or already there), 3 some failed (`EXIT_SOME_FAILED`); a `UsageError`
raised before the run (no items, bad options) is the CLI's exit code 2.

Outputs must be written atomically so that "the file exists" means "the file is complete": use
`atomic_output_path` (for writers such as PyAV that need a path) or `write_json_atomic`.

API (stable; other steps import it)::

    items = [StepItem(key="S001C001P001R001A001", source="/in/S001C001P001R001A001_rgb.avi",
                      outputs=(out / "rgb/S001C001P001R001A001_rgb.avi",), payload=anything), ...]
    code = run_steps(items, out, process=lambda item: ..., description="person-crop")
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llavidal_core.atomic_files import TEMP_SUFFIX, atomic_write_bytes
from llavidal_core.errors import UsageError
from llavidal_core.extraction import (
    EXIT_OK, EXIT_SOME_FAILED, ExitAgreement, distributed_slot, prepare_output_folder, record_failure,
    shard_for_rank,
)

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "StepItem", "atomic_output_path", "check_unique_keys", "run_steps",
           "write_json_atomic"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepItem:
    """One unit of work (usually one video).

    ``key``: its id in logs and ``errors.jsonl`` (``video_id``); ``source``: the input path (or name) the
    errors log names; ``outputs``: the files it writes; the item is done, and skipped, when all exist
    (an item with no outputs is always run); ``payload``: whatever ``process`` needs.
    """

    key: str
    source: str
    outputs: tuple[Path, ...] = ()
    payload: Any = field(default=None, compare=False)

    def done(self) -> bool:
        return bool(self.outputs) and all(Path(path).is_file() for path in self.outputs)


def check_unique_keys(items: Sequence[StepItem]) -> None:
    """`UsageError` naming both sources when two items share a key or an output path."""
    keys: dict[str, str] = {}
    outputs: dict[Path, str] = {}
    for item in items:
        if item.key in keys:
            raise UsageError(f"two inputs have the id {item.key!r}: {keys[item.key]} and {item.source}")
        keys[item.key] = item.source
        for path in item.outputs:
            path = Path(path).resolve()
            if path in outputs:
                raise UsageError(f"{outputs[path]} and {item.source} would both write {path}")
            outputs[path] = item.source


def run_steps(items: Sequence[StepItem], out: str | os.PathLike, *, process: Callable[[StepItem], Any],
              description: str, progress: bool = True) -> int:
    """Run ``process(item)`` for this rank's share of ``items`` (sorted by key first) not done yet.

    ``process`` writes the item's outputs (atomically) or raises; any ``Exception`` it raises is logged as
    a warning, recorded in ``OUT/errors.jsonl`` and counted; KeyboardInterrupt stops the run. ``process``
    may return a list of problem strings (parts it left out, e.g. a missing clip of a stitched video): the
    item counts as written, each problem is logged and recorded, and the exit code becomes 3. Returns
    0 or 3 (module docstring). `UsageError` when ``items`` is empty or two items collide.
    """
    if not items:
        raise UsageError(f"{description}: no inputs to process")
    check_unique_keys(items)
    out = prepare_output_folder(out)
    rank, world_size, _ = distributed_slot()
    mine = shard_for_rank(sorted(items, key=lambda item: item.key), rank, world_size)
    agreement = ExitAgreement(world_size)
    failed = skipped = written = partial = 0
    from tqdm.auto import tqdm

    bar = tqdm(mine, desc=description, unit="video", disable=not progress or None)
    for item in bar:
        if item.done():
            skipped += 1
            continue
        try:
            problems = process(item)
        except Exception as exc:  # noqa: BLE001 - one bad input is reported and skipped, the rest go on
            failed += 1
            reason = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s failed: %s", item.source, description, reason)
            record_failure(out, str(item.source), item.key, reason, rank)
        else:
            written += 1
            for problem in problems or ():  # written, but with parts left out: reported, exit code 3
                partial += 1
                logger.warning("%s: %s", item.source, problem)
                record_failure(out, str(item.source), item.key, str(problem), rank)
        bar.set_postfix(written=written, skipped=skipped, failed=failed, refresh=False)
    logger.info("%s: %d written, %d already done, %d failed (rank %d of %d)%s", description, written, skipped,
                failed, rank, world_size, f"; see {out / 'errors.jsonl'}" if failed else "")
    return agreement.exit_code(EXIT_SOME_FAILED if failed or partial else EXIT_OK)


@contextmanager
def atomic_output_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` (named as `llavidal_core.atomic_files` names temp files, so a killed run's
    leftovers are cleaned by the next) to write to; on a clean exit it is fsync'd and renamed over ``path``,
    on an exception removed. The temp name ends in ``.tmp``: give writers the container format explicitly
    (e.g. ``av.open(temp, "w", format="mp4")``). Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    lock = open(temp_path, "xb")
    try:
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # "my writer is alive"
            yield temp_path
            with open(temp_path, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as indented UTF-8 JSON, written atomically (parent folders created); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path
