"""The run log (``log.jsonl``) as a record of the run that produced the model: one record per step.

A run killed after step 15 and resumed from its checkpoint at step 10 trains steps 11-15 again and logs them
again. `forget_steps_after` takes the first run's records of those steps out when the resumed run starts, so
each step's record is in the log once, from the run whose weights were kept. Records without a step (the data
report) and other stages' records stay as they are; a torn last line (the kill came mid-write) is dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from llavidal_core.atomic_files import atomic_write_bytes

logger = logging.getLogger(__name__)


def forget_steps_after(path: Path, stage: str, step: int) -> int:
    """Rewrite the JSON-lines log at ``path`` (atomically) without ``stage``'s records of steps after ``step``
    and without lines that are not JSON objects; return how many lines went. A missing log is left missing."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            logger.warning("%s: dropped a line that is not a JSON record (%.60r)", path, line)
            dropped += 1
        elif record.get("stage") == stage and isinstance(record.get("step"), int) and record["step"] > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))
    return dropped
