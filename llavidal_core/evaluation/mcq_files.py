"""Reading ADLMCQ multiple-choice files in every schema LLAVIDAL has published.

A file is a JSON list of records or a JSON object of records keyed "0", "1", ...; each schema is told
apart by its fields and turned into `MCQuestion`s with lettered choices (A, B, ...) and the right letter:

| schema | video | question | choices | answer |
| --- | --- | --- | --- | --- |
| ``adlmcq`` (current) | ``video_filename`` | ``question`` | ``answer_choices`` {letter: text} | ``ground_truth_letter`` |
| ``lemma-tc-legacy`` | ``video_id``, ``start_frame``, ``end_frame`` | ``question`` | ``choices`` {A..F: text} | ``answer`` (letter) |
| ``charades-ar-legacy`` | ``id`` | ``Q`` | ``Options``: "1. ['a', 'b'] 2. [...]" | ``Ground Truth`` (the right list) |
| ``smarthome-ar-legacy`` | ``video_id`` (a path) | ``question`` | ``choices`` {"1".."4": text} | ``ground_truth`` (the text) |
| ``tsu-tc-legacy`` | ``video_path`` | ``question`` | ``options`` {A..D: text} | ``correct_answer`` (letter) |

Charades options are lists of actions; a choice's text is the list joined with ", ".

Each question also carries what the original's script for its file gives the model (ADL-X/LLAVIDAL
``evaluation/ADL-X/eval_adlxmcq.py`` and ``legacy/multiproc_eval_*.py``): ``video_path``, the video it opens,
relative to its ``--video_dir``, and ``prompt``, the question text it asks (the cue tokens follow on a new line):

| schema | ``video_path`` | ``prompt`` |
| --- | --- | --- |
| ``adlmcq``, ``charades-ar-legacy``, ``tsu-tc-legacy`` | ``video_filename``; ``{id}.mp4``; ``video_path`` | ``"{question} The output should be the choice among one of the following choices. Choices are (A) .. (B) .."`` |
| ``smarthome-ar-legacy`` | the file name of ``video_id`` (an absolute path there) | ``"{question}(A) .. (B) .."`` (no instruction, no space) |
| ``lemma-tc-legacy`` | ``{video_id}_{start_frame}_{end_frame}.mp4`` | ``"{question}. The output should be ... Choices are (A) .."`` |

Choices are listed in the file's order. A question's video id is `llavidal_core.video_ids.video_id_for` of its
``video_path``, so ``P03/P03T01C05/clips/clip_1.mp4`` and ``P04/.../clip_1.mp4`` stay two videos.
"""

from __future__ import annotations

import ast
import json
import re
import reprlib
import string
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llavidal_core.errors import LlavidalError
from llavidal_core.video_ids import video_id_for

LETTERS = string.ascii_uppercase
MCQ_INSTRUCTION = "The output should be the choice among one of the following choices."


class MCQFormatError(LlavidalError):
    """A questions file whose schema is unknown or whose records are broken."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlist = _SHOWN.maxdict = 40
_SHOWN.maxstring = _SHOWN.maxother = 80


def _shown(value: Any) -> str:
    """``repr(value)`` cut short, however long or deeply nested ``value`` is (for error messages)."""
    return _SHOWN.repr(value)


def choices_text(choices: dict[str, str]) -> str:
    """``"(A) text (B) text ..."`` in the choices' order, as every original MCQ script writes them."""
    return " ".join(f"({letter}) {text}" for letter, text in choices.items())


def adlmcq_prompt(question: str, choices: dict[str, str]) -> str:
    """The original's ADLMCQ question text: question, instruction, choices (eval_adlxmcq.py)."""
    return f"{question} {MCQ_INSTRUCTION} Choices are {choices_text(choices)}"


@dataclass(frozen=True)
class MCQuestion:
    """One multiple-choice question, whatever schema it came from.

    ``video`` is the file's own video field; ``video_path`` the video the original's script opens for it,
    relative to the videos folder (``video`` when not given); ``prompt`` the question text the original's
    script asks (`adlmcq_prompt` when not given).
    """

    question_id: str
    video: str
    question: str
    choices: dict[str, str]
    answer: str
    task: str
    video_path: str = ""
    prompt: str = ""

    def __post_init__(self) -> None:
        if not self.video_path:
            object.__setattr__(self, "video_path", self.video)
        if not self.prompt:
            object.__setattr__(self, "prompt", adlmcq_prompt(self.question, self.choices))

    @property
    def video_id(self) -> str:
        """The feature-store id of the video (`llavidal_core.video_ids.video_id_for` of ``video_path``)."""
        return video_id_for(self.video_path)


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
        raise ValueError(f"{field!r} is {_shown(letter)}, not one of the choices {sorted(choices)}")
    return letter.strip().upper()


def _upper_keys(choices: dict[str, str]) -> dict[str, str]:
    upper = {k.strip().upper(): v for k, v in choices.items()}
    if len(upper) != len(choices):
        raise ValueError(f"choice labels {sorted(choices)} collide when upper-cased")
    return upper


@dataclass(frozen=True)
class _Parsed:
    video: str
    video_path: str
    question: str
    choices: dict[str, str]
    answer: str
    prompt: str


def _text(record: dict, field: str) -> str:
    value = record[field]
    if not isinstance(value, str):
        raise ValueError(f"{field!r} must be a string, got {type(value).__name__}")
    return value


def _parse_current(record: dict) -> _Parsed:
    """eval_adlxmcq.py: ``video_dir/video_filename``."""
    choices = _upper_keys(_choice_map(record["answer_choices"], "answer_choices"))
    question, video = _text(record, "question"), _text(record, "video_filename")
    answer = _checked_letter(choices, record["ground_truth_letter"], "ground_truth_letter")
    return _Parsed(video, video, question, choices, answer, adlmcq_prompt(question, choices))


def _parse_lemma(record: dict) -> _Parsed:
    """legacy/multiproc_eval_LEMMA-TC.py: ``{video_id}_{start_frame}_{end_frame}.mp4``; ``". "`` + instruction."""
    choices = _upper_keys(_choice_map(record["choices"], "choices"))
    question, video = _text(record, "question"), _text(record, "video_id")
    for field in ("start_frame", "end_frame"):
        if isinstance(record.get(field), bool) or not isinstance(record.get(field), (int, str)):
            raise ValueError(f"{field!r} must be a frame number, got {_shown(record.get(field))}")
    video_path = f"{video}_{record['start_frame']}_{record['end_frame']}.mp4"
    prompt = f"{question}. {MCQ_INSTRUCTION} Choices are {choices_text(choices)}"
    return _Parsed(video, video_path, question, choices, _checked_letter(choices, record["answer"], "answer"), prompt)


def _parse_tsu(record: dict) -> _Parsed:
    """legacy/multiproc_eval_TSU-TC.py: ``video_dir/video_path`` (a relative path: ``P03/P03T01C05/clips/clip_1.mp4``)."""
    choices = _upper_keys(_choice_map(record["options"], "options"))
    question, video = _text(record, "question"), _text(record, "video_path")
    answer = _checked_letter(choices, record["correct_answer"], "correct_answer")
    return _Parsed(video, video, question, choices, answer, adlmcq_prompt(question, choices))


def _parse_smarthome(record: dict) -> _Parsed:
    """legacy/multiproc_eval_SH-AR.py: the file name of ``video_id``; the question, then the choices, no space."""
    numbered = _choice_map(record["choices"], "choices")
    if not all(key.strip().isdigit() and 1 <= int(key) <= len(LETTERS) for key in numbered):
        raise ValueError(f"'choices' keys must be numbers from 1, got {list(numbered)}")
    choices = {LETTERS[int(key) - 1]: text for key, text in numbered.items()}  # the file's order, as the script
    if len(choices) != len(numbered):
        raise ValueError(f"'choices' keys {list(numbered)} repeat a number")
    truth = record["ground_truth"]
    matches = [letter for letter, text in choices.items() if text == truth]
    if len(matches) != 1:
        raise ValueError(f"'ground_truth' {_shown(truth)} matches {len(matches)} of the choices, expected exactly one")
    question, video = _text(record, "question"), _text(record, "video_id")
    video_path = video.rsplit("/", 1)[-1]  # os.path.basename on the POSIX machines it ran on
    return _Parsed(video, video_path, question, choices, matches[0], f"{question}{choices_text(choices)}")


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


def _parse_charades(record: dict) -> _Parsed:
    """legacy/multiproc_eval_Charades-AR.py: ``video_dir/{id}.mp4``; choices are the lists joined with ", "."""
    lists = parse_numbered_lists(record["Options"])
    truth = record["Ground Truth"]
    matches = [i for i, option in enumerate(lists) if option == truth]
    if len(matches) != 1:
        raise ValueError(f"'Ground Truth' equals {len(matches)} of the {len(lists)} options, expected exactly one")
    choices = _lettered([", ".join(option) for option in lists])
    question, video = _text(record, "Q"), _text(record, "id")
    return _Parsed(video, f"{video}.mp4", question, choices, LETTERS[matches[0]], adlmcq_prompt(question, choices))


Parser = Callable[[dict], _Parsed]

# schema name -> (fields that identify it, parser); checked in this order
SCHEMAS: dict[str, tuple[frozenset[str], Parser]] = {
    "adlmcq": (frozenset({"video_filename", "question", "answer_choices", "ground_truth_letter"}), _parse_current),
    "charades-ar-legacy": (frozenset({"id", "Q", "Options", "Ground Truth"}), _parse_charades),
    "tsu-tc-legacy": (frozenset({"video_path", "question", "options", "correct_answer"}), _parse_tsu),
    "smarthome-ar-legacy": (frozenset({"video_id", "question", "choices", "ground_truth"}), _parse_smarthome),
    "lemma-tc-legacy": (frozenset({"video_id", "question", "choices", "answer", "start_frame", "end_frame"}),
                        _parse_lemma),
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


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict; a key given twice is an error (``json`` keeps the last and loses the other)."""
    seen = Counter(key for key, _ in pairs)
    repeated = [key for key, count in seen.items() if count > 1]
    if repeated:
        raise _RepeatedKeyError(repeated[0])
    return dict(pairs)


class _RepeatedKeyError(ValueError):
    pass


def read_questions_json(path: Path) -> Any:
    """The parsed JSON of a questions file; `MCQFormatError` naming the file for anything but a readable document.

    Refused: a missing or unreadable file, text that is not UTF-8 JSON, nesting deeper than Python's recursion
    limit (a hostile ``"[" * 100000``), numbers too long to convert, and an object that repeats a key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MCQFormatError(f"{path}: no such questions file") from None
    except IsADirectoryError:
        raise MCQFormatError(f"{path}: is a folder, not a questions file") from None
    except UnicodeDecodeError as exc:
        raise MCQFormatError(f"{path}: not valid JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise MCQFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(text, object_pairs_hook=_object_without_repeated_keys)
    except _RepeatedKeyError as exc:
        raise MCQFormatError(f"{path}: the key {exc.args[0]!r} appears twice in one JSON object; "
                             f"one of the two would be lost") from None
    except RecursionError:
        raise MCQFormatError(f"{path}: not a questions file: its JSON is nested too deeply to read "
                             f"(deeper than {sys.getrecursionlimit()} levels)") from None
    except ValueError as exc:  # json.JSONDecodeError, and integers too long to convert
        raise MCQFormatError(f"{path}: not valid JSON ({exc})") from None


def load_mcq_file(path: str | Path) -> MCQFile:
    """Read a questions file in any known schema; a clear `MCQFormatError` names the file and record otherwise."""
    path = Path(path)
    data = read_questions_json(path)
    records = _records(data, path)
    if not records:
        raise MCQFormatError(f"{path}: holds no questions")
    key, first = records[0]
    schema = detect_schema(first)
    if schema is None:
        found = _shown(sorted(first)) if isinstance(first, dict) else type(first).__name__
        known = "; ".join(f"{name}: {sorted(fields)}" for name, (fields, _) in SCHEMAS.items())
        raise MCQFormatError(f"{path}: unknown questions schema; record {_shown(key)} has fields {found}. "
                             f"Known schemas: {known}")
    fields, parse = SCHEMAS[schema]
    questions = []
    for key, record in records:
        if not isinstance(record, dict) or not fields <= record.keys():
            found = _shown(sorted(record)) if isinstance(record, dict) else type(record).__name__
            raise MCQFormatError(f"{path}: record {_shown(key)} does not follow the {schema} schema "
                                 f"(needs {sorted(fields)}, has {found})")
        try:
            parsed = parse(record)
            video_id_for(parsed.video_path)
        except (ValueError, TypeError) as exc:
            raise MCQFormatError(f"{path}: record {_shown(key)} ({schema}): {exc}") from None
        questions.append(MCQuestion(key, parsed.video, parsed.question, parsed.choices, parsed.answer, path.stem,
                                    video_path=parsed.video_path, prompt=parsed.prompt))
    return MCQFile(path, schema, questions)
