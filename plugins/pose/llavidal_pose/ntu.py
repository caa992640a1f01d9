"""NTU RGB+D file names and benchmark splits, and the training manifests ``llavidal pose manifest`` writes.

An NTU recording is named ``SsssCcccPpppRrrrAaaa``: setup, camera, performer, replication and action
(1-based). The standard splits (Shahroudy et al. 2016; Liu et al. 2019, as in every NTU data script):

- ``xsub``: cross-subject; performers in `TRAINING_PERFORMERS` train (NTU 60's 20 training performers are
  the first 20 of NTU 120's 53);
- ``xset``: cross-setup (NTU 120); even setup numbers train;
- ``xview``: cross-view (NTU 60); cameras 2 and 3 train.

This module imports neither torch nor numpy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from llavidal_core.errors import LlavidalError

TRAINING_PERFORMERS = frozenset({
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52, 53, 54,
    55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
})
TRAINING_CAMERAS = frozenset({2, 3})
SPLITS = ("xsub", "xset", "xview")
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class NTUName:
    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @classmethod
    def parse(cls, path: str | Path) -> "NTUName":
        match = _NAME.match(Path(path).name)
        if match is None:
            raise LlavidalError(f"{path}: not an NTU RGB+D recording name (SsssCcccPpppRrrrAaaa)")
        return cls(*(int(group) for group in match.groups()))

    @property
    def sample(self) -> str:
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}R{self.replication:03d}"
                f"A{self.action:03d}")

    def in_training_set(self, split: str) -> bool:
        if split == "xsub":
            return self.performer in TRAINING_PERFORMERS
        if split == "xset":
            return self.setup % 2 == 0
        if split == "xview":
            return self.camera in TRAINING_CAMERAS
        raise ValueError(f"unknown NTU split {split!r}; choose from {', '.join(SPLITS)}")


def read_name_list(path: str | Path) -> list[str]:
    """The non-blank, non-``#`` lines of a file, stripped (action names: line n names action n, ``A00n``)."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def write_manifests(paths: list[Path], action_names: list[str], split: str, out: str | Path,
                    skip: frozenset[str] = frozenset()) -> dict[str, int]:
    """Write ``out/train.jsonl`` and ``out/eval.jsonl`` (absolute paths, action names); returns the counts."""
    if split not in SPLITS:
        raise ValueError(f"unknown NTU split {split!r}; choose from {', '.join(SPLITS)}")
    rows: dict[str, list[str]] = {"train": [], "eval": []}
    skipped = 0
    for path in paths:
        name = NTUName.parse(path)
        if name.sample in skip:
            skipped += 1
            continue
        if name.action > len(action_names):
            raise LlavidalError(f"{path}: action {name.action} has no name ({len(action_names)} names given)")
        record = {"path": str(Path(path).resolve()), "action": action_names[name.action - 1]}
        rows["train" if name.in_training_set(split) else "eval"].append(json.dumps(record))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for part, lines in rows.items():
        (out / f"{part}.jsonl").write_text("".join(line + "\n" for line in lines))
    return {"train": len(rows["train"]), "eval": len(rows["eval"]), "skipped": skipped}
