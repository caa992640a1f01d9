"""Reading the two video-description benchmarks of LLAVIDAL, each in the original's file format.

| protocol | file | one item | source (ADL-X/LLAVIDAL) |
| --- | --- | --- | --- |
| ``charades`` | a JSON list of ``{"video_name", "Q", "A", "cons_Q1", "cons_Q2", "cons_A"}`` | one video, ``<video_name>.mp4`` | ``evaluation/ADL-X/eval_charades_desc.py`` |
| ``tsu`` | a JSON object ``{video_name: full description}`` | the one-minute clips ``<video_name>_*.mp4`` of one video | ``evaluation/ADL-X/eval_tsu_desc.py`` |

Every item becomes a `DescriptionItem`: the description question and its reference answer, and the two
paraphrased consistency questions with their common answer. TSU items take the questions the original
hard-codes (`TSU_DESCRIPTION_QUESTION`, `TSU_CONSISTENCY_QUESTIONS`) and the full description as the answer of
both. A broken file raises `DescriptionFormatError` naming the file and the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.mcq_files import MCQFormatError, read_questions_json
from llavidal_core.video_ids import video_id_for

CHARADES_FIELDS = ("video_name", "Q", "A", "cons_Q1", "cons_Q2", "cons_A")
PROTOCOLS = ("charades", "tsu")

TSU_DESCRIPTION_QUESTION = ("Please describe the primary actions and interactions in the video, focusing on "
                            "movements and the use of objects by any person or persons present.")
TSU_CONSISTENCY_QUESTIONS = ("Describe the actions in the scene",
                             "What are the actions performed by the person in the video?")


class DescriptionFormatError(LlavidalError):
    """A description benchmark file that is neither format, or a broken record of one."""


@dataclass(frozen=True)
class DescriptionItem:
    """One video to describe: ``item_id`` (the record's index, or the TSU video name), the video's name, the
    description question and reference, the two paraphrased questions and their common reference."""

    item_id: str
    video_name: str
    question: str
    answer: str
    consistency_questions: tuple[str, str]
    consistency_answer: str


@dataclass(frozen=True)
class DescriptionFile:
    path: Path
    protocol: str
    items: list[DescriptionItem]


def _checked_name(path: Path, key: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DescriptionFormatError(f"{path}: record {key}: the video name must be a non-empty string, got "
                                     f"{name!r}")
    try:
        video_id_for(f"{name}.mp4")
    except ValueError as exc:
        raise DescriptionFormatError(f"{path}: record {key}: {exc}") from None
    return name


def _charades_item(path: Path, index: int, record: Any) -> DescriptionItem:
    if not isinstance(record, dict):
        raise DescriptionFormatError(f"{path}: record {index} is a {type(record).__name__}, not an object with "
                                     f"{list(CHARADES_FIELDS)}")
    missing = [name for name in CHARADES_FIELDS if name not in record]
    if missing:
        raise DescriptionFormatError(f"{path}: record {index} lacks {missing} (a Charades-Descriptions record has "
                                     f"{list(CHARADES_FIELDS)}; has {sorted(map(str, record))[:10]})")
    for name in CHARADES_FIELDS[1:]:
        if not isinstance(record[name], str) or not record[name].strip():
            raise DescriptionFormatError(f"{path}: record {index}: {name!r} must be a non-empty string, got "
                                         f"{record[name]!r:.80}")
    return DescriptionItem(str(index), _checked_name(path, str(index), record["video_name"]), record["Q"],
                           record["A"], (record["cons_Q1"], record["cons_Q2"]), record["cons_A"])


def _tsu_item(path: Path, name: str, description: Any) -> DescriptionItem:
    if not isinstance(description, str) or not description.strip():
        raise DescriptionFormatError(f"{path}: video {name!r}: its description must be a non-empty string, got "
                                     f"{description!r:.80}")
    name = _checked_name(path, repr(name), name)
    return DescriptionItem(name, name, TSU_DESCRIPTION_QUESTION, description, TSU_CONSISTENCY_QUESTIONS,
                           description)


def load_description_file(path: str | Path) -> DescriptionFile:
    """The items of a Charades-Descriptions list or a TSU-Descriptions object (module docstring).

    Raises `DescriptionFormatError` naming the file for an unreadable or empty file, another JSON shape, or a
    record that is missing a field or holds an empty one.
    """
    path = Path(path)
    try:
        data = read_questions_json(path)
    except MCQFormatError as exc:
        raise DescriptionFormatError(str(exc)) from None
    if isinstance(data, list):
        items = [_charades_item(path, index, record) for index, record in enumerate(data)]
        protocol = "charades"
    elif isinstance(data, dict) and all(isinstance(value, str) for value in data.values()):
        items = [_tsu_item(path, name, description) for name, description in data.items()]
        protocol = "tsu"
    else:
        raise DescriptionFormatError(
            f"{path}: neither a Charades-Descriptions file (a JSON list of {list(CHARADES_FIELDS)} records) nor a "
            f"TSU-Descriptions file (a JSON object of video name -> description); found a {type(data).__name__}"
            + (" whose values are not all strings" if isinstance(data, dict) else ""))
    if not items:
        raise DescriptionFormatError(f"{path}: holds no videos")
    return DescriptionFile(path, protocol, items)
