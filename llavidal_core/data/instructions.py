"""Instruction files: the ADL-X training JSON, and the Video-ChatGPT ``{video_id, q, a}`` format it derives from.

An ADL-X record (``NTU_QA-for-training.json``) is::

    {"id": "001_video_001", "video": "001_video_001.pkl", "object": "001_video_001_object.pkl",
     "pose": "001_video_001_pose.pkl",
     "conversations": [{"from": "human", "value": "<video><object><human_pose>\\nWhat ...?"},
                       {"from": "gpt", "value": "..."}]}

Every field other than ``id`` and ``conversations`` names a cue's feature file; the ``video`` one also gives
the sample's feature-store id, its path without the last suffix (`llavidal_core.video_ids`; without it, the
id is the sample's ``id``). Files are a JSON list or JSON lines; a broken record is an error naming the file
and the record's index (or line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from llavidal_core.errors import LlavidalError
from llavidal_core.json_text import parse_json_text
from llavidal_core.video_ids import video_id_for

ROLES = ("human", "gpt")


class InstructionFormatError(LlavidalError):
    """An instruction file, or one of its records, is not in the expected format."""


@dataclass(frozen=True)
class InstructionSample:
    """One training conversation and the feature files of its cues."""

    sample_id: str
    conversation: tuple[dict[str, str], ...]
    feature_files: dict[str, str] = field(default_factory=dict)
    index: int = 0

    @property
    def video_id(self) -> str:
        """The feature-store id: `video_id_for` of the ``video`` field (``001_video_001.pkl`` ->
        ``001_video_001``, ``P03/x/clip_1.mp4`` -> ``P03/x/clip_1``), else the sample id."""
        if "video" not in self.feature_files:
            return self.sample_id
        return video_id_for(self.feature_files["video"])

    def mentions(self, placeholder: str) -> bool:
        return any(placeholder in turn["value"] for turn in self.conversation)


def _load_records(path: Path) -> list[tuple[str, Any]]:
    """``[(where, record), ...]`` where ``where`` names the record's index or line for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InstructionFormatError(f"{path}: no such instruction file") from None
    if text.lstrip().startswith("["):
        try:
            data = parse_json_text(text)
        except ValueError as exc:
            raise InstructionFormatError(f"{path}: not valid JSON ({exc})") from None
        return [(f"record {i}", record) for i, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", parse_json_text(line)))
        except ValueError as exc:
            raise InstructionFormatError(f"{path}: line {number} is not valid JSON ({exc})") from None
    return records


def _parse_conversation(turns: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(turns, list) or len(turns) < 2:
        raise ValueError("'conversations' must be a list of at least one human and one gpt turn")
    parsed = []
    for position, turn in enumerate(turns):
        expected = ROLES[position % 2]
        if not isinstance(turn, dict) or turn.get("from") != expected or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {position} must be {{'from': {expected!r}, 'value': <text>}}, got {turn!r:.120}")
        parsed.append({"from": expected, "value": turn["value"]})
    if len(parsed) % 2:
        raise ValueError("the last turn must be a gpt answer")
    return tuple(parsed)


def parse_instruction_record(record: Any, index: int = 0) -> InstructionSample:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [name for name in ("id", "conversations") if name not in record]
    if missing:
        raise ValueError(f"missing field(s) {missing}; fields found: {sorted(record)}")
    sample_id = record["id"]
    if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool):
        raise ValueError(f"'id' must be a string, got {sample_id!r}")
    feature_files = {}
    for key, value in record.items():
        if key in ("id", "conversations"):
            continue
        if not isinstance(value, str):
            raise ValueError(f"feature field {key!r} must be a file name, got {value!r:.80}")
        feature_files[key] = value
    if "video" in feature_files:
        video_id_for(feature_files["video"])  # a 'video' field that gives no id is this record's error
    return InstructionSample(str(sample_id), _parse_conversation(record["conversations"]), feature_files, index)


def read_instruction_file(path: str | Path) -> list[InstructionSample]:
    """Every sample of an ADL-X style file (JSON list or JSON lines), validated record by record."""
    path = Path(path)
    samples = []
    for index, (where, record) in enumerate(_load_records(path)):
        try:
            samples.append(parse_instruction_record(record, index))
        except ValueError as exc:
            raise InstructionFormatError(f"{path}: {where}: {exc}") from None
    return samples


def convert_videoinstruct(records: Iterable[Any], keep_video_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Video-ChatGPT's converter rule: ``q + "\\n<video>"`` for even records, ``"<video>\\n" + q`` for odd ones.

    The parity counts every input record, as the original script's ``enumerate`` does, also those dropped
    by ``keep_video_ids`` (ids without features).
    """
    converted = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("video_id", "q", "a")):
            raise ValueError(f"record {index}: expected {{'video_id', 'q', 'a'}} strings, got {record!r:.120}")
        video_id = record["video_id"]
        if keep_video_ids is not None and video_id not in keep_video_ids:
            continue
        question = f"{record['q']}\n<video>" if index % 2 == 0 else f"<video>\n{record['q']}"
        converted.append({
            "id": video_id,
            "video": f"{video_id}.pkl",
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": record["a"]}],
        })
    return converted
