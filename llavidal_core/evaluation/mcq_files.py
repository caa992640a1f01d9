"""Reading ADLMCQ multiple-choice files in every schema LLAVIDAL has published.

A file is a JSON list of records or a JSON object of records keyed "0", "1", ...; each schema is told
apart by its fields and turned into `MCQuestion`s with lettered choices (A, B, ...) and the right letter:

| schema | video | question | choices | answer |
| --- | --- | --- | --- | --- |
| ``adlmcq`` (current) | ``video_filename`` | ``question`` | ``answer_choices`` {letter: text} | ``ground_truth_letter`` |
| ``lemma-tc-legacy`` | ``video_id`` | ``question`` | ``choices`` {A..F: text} | ``answer`` (letter) |
| ``charades-ar-legacy`` | ``id`` | ``Q`` | ``Options``: "1. ['a', 'b'] 2. [...]" | ``Ground Truth`` (the right list) |
| ``smarthome-ar-legacy`` | ``video_id`` (a path) | ``question`` | ``choices`` {"1".."4": text} | ``ground_truth`` (the text) |
| ``tsu-tc-legacy`` | ``video_path`` | ``question`` | ``options`` {A..D: text} | ``correct_answer`` (letter) |

Charades options are lists of actions; a choice's text is the list joined with ", ".
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llavidal_core.errors import LlavidalError

LETTERS = string.ascii_uppercase


class MCQFormatError(LlavidalError):
    """A questions file whose schema is unknown or whose records are broken."""


@dataclass(frozen=True)
class MCQuestion:
    """One multiple-choice question, whatever schema it came from."""

    question_id: str
    video: str
    question: str
    choices: dict[str, str]
    answer: str
    task: str

    @property
    def video_id(self) -> str:
        """The feature-store id of the video: its file name up to the first dot."""
        return Path(self.video).name.split(".")[0]


@dataclass(frozen=True)
class MCQFile:
    path: Path
    schema: str
    questions: list[MCQuestion]

    def summary(self) -> dict[str, Any]:
        """What ``llavidal eval mcq --check`` prints."""
        return {
            "file": str(self.path),
            "schema": self.schema,
            "task": self.path.stem,
            "num_questions": len(self.questions),
            "choices_per_question": _sorted_counts(Counter(len(q.choices) for q in self.questions)),
            "answer_distribution": _sorted_counts(Counter(q.answer for q in self.questions)),
        }


def _sorted_counts(counter: Counter) -> dict[str, int]:
    return {str(key): counter[key] for key in sorted(counter)}


def _lettered(values: list[str]) -> dict[str, str]:
    if len(values) > len(LETTERS):
        raise ValueError(f"{len(values)} choices; at most {len(LETTERS)} are supported")
    return {LETTERS[i]: value for i, value in enumerate(values)}


def _choice_map(raw: Any, field: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{field!r} must be a non-empty object of choices")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"{field!r} must map labels to strings")
    return dict(raw)


def _checked_letter(choices: dict[str, str], letter: Any, field: str) -> str:
    if not isinstance(letter, str) or letter.strip().upper() not in choices:
        raise ValueError(f"{field!r} is {letter!r}, not one of the choices {sorted(choices)}")
    return letter.strip().upper()


def _upper_keys(choices: dict[str, str]) -> dict[str, str]:
    upper = {k.strip().upper(): v for k, v in choices.items()}
    if len(upper) != len(choices):
        raise ValueError(f"choice labels {sorted(choices)} collide when upper-cased")
    return upper


def _parse_current(record: dict) -> tuple[str, str, dict[str, str], str]:
    choices = _upper_keys(_choice_map(record["answer_choices"], "answer_choices"))
    return record["video_filename"], record["question"], choices, _checked_letter(
        choices, record["ground_truth_letter"], "ground_truth_letter")


def _parse_lemma(record: dict) -> tuple[str, str, dict[str, str], str]:
    choices = _upper_keys(_choice_map(record["choices"], "choices"))
    return record["video_id"], record["question"], choices, _checked_letter(choices, record["answer"], "answer")


def _parse_tsu(record: dict) -> tuple[str, str, dict[str, str], str]:
    choices = _upper_keys(_choice_map(record["options"], "options"))
    return record["video_path"], record["question"], choices, _checked_letter(
        choices, record["correct_answer"], "correct_answer")


def _parse_smarthome(record: dict) -> tuple[str, str, dict[str, str], str]:
    numbered = _choice_map(record["choices"], "choices")
    try:
        ordered = [numbered[key] for key in sorted(numbered, key=int)]
    except ValueError as exc:
        raise ValueError(f"'choices' keys must be numbers, got {sorted(numbered)}") from exc
    choices = _lettered(ordered)
    truth = record["ground_truth"]
    matches = [letter for letter, text in choices.items() if text.strip() == str(truth).strip()]
    if len(matches) != 1:
        raise ValueError(f"'ground_truth' {truth!r} matches {len(matches)} of the choices, expected exactly one")
    return record["video_id"], record["question"], choices, matches[0]


_NUMBERED_LIST = re.compile(r"(?:^|\s)(\d+)\.\s*(?=\[)")


def parse_numbered_lists(options: str) -> list[list[str]]:
    """Split Charades' ``"1. ['a', 'b'] 2. ['c']"`` into ``[['a', 'b'], ['c']]`` (numbers must run 1, 2, ...)."""
    if not isinstance(options, str):
        raise ValueError(f"'Options' must be a string, got {type(options).__name__}")
    starts = list(_NUMBERED_LIST.finditer(options))
    if not starts:
        raise ValueError("'Options' holds no numbered lists like \"1. ['a', 'b']\"")
    lists = []
    for index, match in enumerate(starts):
        if int(match.group(1)) != index + 1:
            raise ValueError(f"'Options' numbering jumps to {match.group(1)} at position {index + 1}")
        end = starts[index + 1].start() if index + 1 < len(starts) else len(options)
        literal = options[match.end():end].strip()
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"option {index + 1} is not a list literal: {literal[:60]!r}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"option {index + 1} must be a list of strings")
        lists.append(value)
    return lists


def _parse_charades(record: dict) -> tuple[str, str, dict[str, str], str]:
    lists = parse_numbered_lists(record["Options"])
    truth = record["Ground Truth"]
    matches = [i for i, option in enumerate(lists) if option == truth]
    if len(matches) != 1:
        raise ValueError(f"'Ground Truth' equals {len(matches)} of the {len(lists)} options, expected exactly one")
    choices = _lettered([", ".join(option) for option in lists])
    return record["id"], record["Q"], choices, LETTERS[matches[0]]


Parser = Callable[[dict], tuple[str, str, dict[str, str], str]]

# schema name -> (fields that identify it, parser); checked in this order
SCHEMAS: dict[str, tuple[frozenset[str], Parser]] = {
    "adlmcq": (frozenset({"video_filename", "question", "answer_choices", "ground_truth_letter"}), _parse_current),
    "charades-ar-legacy": (frozenset({"id", "Q", "Options", "Ground Truth"}), _parse_charades),
    "tsu-tc-legacy": (frozenset({"video_path", "question", "options", "correct_answer"}), _parse_tsu),
    "smarthome-ar-legacy": (frozenset({"video_id", "question", "choices", "ground_truth"}), _parse_smarthome),
    "lemma-tc-legacy": (frozenset({"video_id", "question", "choices", "answer"}), _parse_lemma),
}


def detect_schema(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for name, (fields, _) in SCHEMAS.items():
        if fields <= record.keys():
            return name
    return None


def _records(data: Any, path: Path) -> list[tuple[str, Any]]:
    if isinstance(data, list):
        return [(str(i), record) for i, record in enumerate(data)]
    if isinstance(data, dict):
        return [(str(key), record) for key, record in data.items()]
    raise MCQFormatError(f"{path}: expected a JSON list or object of questions, found a {type(data).__name__}")


def load_mcq_file(path: str | Path) -> MCQFile:
    """Read a questions file in any known schema; a clear `MCQFormatError` names the file and record otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MCQFormatError(f"{path}: no such questions file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MCQFormatError(f"{path}: not valid JSON ({exc})") from None
    records = _records(data, path)
    if not records:
        raise MCQFormatError(f"{path}: holds no questions")
    key, first = records[0]
    schema = detect_schema(first)
    if schema is None:
        found = sorted(first) if isinstance(first, dict) else type(first).__name__
        known = "; ".join(f"{name}: {sorted(fields)}" for name, (fields, _) in SCHEMAS.items())
        raise MCQFormatError(f"{path}: unknown questions schema; record {key!r} has fields {found}. Known schemas: {known}")
    fields, parse = SCHEMAS[schema]
    questions = []
    for key, record in records:
        if not isinstance(record, dict) or not fields <= record.keys():
            found = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise MCQFormatError(f"{path}: record {key!r} does not follow the {schema} schema "
                                 f"(needs {sorted(fields)}, has {found})")
        try:
            video, question, choices, answer = parse(record)
            if not isinstance(video, str) or not isinstance(question, str):
                raise ValueError("video and question must be strings")
        except (ValueError, TypeError) as exc:
            raise MCQFormatError(f"{path}: record {key!r} ({schema}): {exc}") from None
        questions.append(MCQuestion(key, video, question, choices, answer, path.stem))
    return MCQFile(path, schema, questions)
