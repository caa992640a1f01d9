"""Chat messages as transformers writes them, for llavidal's templates: content parts, cue parts, Jinja.

A message is ``{"role": "system" | "user" | "assistant", "content": str | [part, ...]}``. A part is
``{"type": "text", "text": ...}`` or a cue part, whose ``type`` is a cue's name (``"video"``, ``"pose"``,
``"object"``, or any registered cue's) and which holds the cue's input: ``"features"`` (a ``(rows, dim)``
tensor or array), or ``"path"`` (also ``"video"`` / ``"url"`` for a local file), computed by the cue's
encoder. A message's text is its parts in order, a cue part written as the cue's placeholder (``<video>``),
with ``"\\n"`` between parts except between two placeholders: ``[text "What happens?", video]`` is
``"What happens?\\n<video>"``, as LLAVIDAL's inference writes a question, and ``[video, text]`` is
``"<video>\\nWhat happens?"``, as its training data does.

`jinja_chat_template` writes one of llavidal's templates (`llavidal_core.templates`) as a Jinja chat template
that renders such messages to the very string `ChatTemplate.render` gives, so tools that only know
``tokenizer.apply_chat_template`` prompt a llavidal model as it was trained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llavidal_core.cues import CueSpec
from llavidal_core.templates import ChatTemplate

CUE_INPUT_KEYS = ("path", "video", "url")
SYSTEM = "system"


@dataclass
class ParsedConversation:
    """One conversation of messages: its turns for the processor, the system text if given, and each cue's
    input (``{cue: features or path}``)."""

    turns: list[dict[str, str]]
    system: str | None = None
    cue_inputs: dict[str, Any] = field(default_factory=dict)


def parse_messages(messages: Sequence[Mapping[str, Any]], cues: Sequence[CueSpec]) -> ParsedConversation:
    """``messages`` (module docstring) → turns ``{"role", "content"}`` with placeholders, and the cue inputs.

    Raises ValueError naming the message and part for an unknown role or part type, a cue part without an
    input, or a cue given twice in one conversation (each cue has one input per sample).
    """
    by_name = {spec.name: spec for spec in cues}
    parsed = ParsedConversation(turns=[])
    for index, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"message {index}: role {role!r}; use system, user or assistant")
        text = content if isinstance(content, str) else _text_of_parts(index, content, by_name, parsed.cue_inputs)
        if role == SYSTEM:
            if index != 0:
                raise ValueError(f"message {index}: a system message must come first")
            parsed.system = text
        else:
            parsed.turns.append({"role": role, "content": text})
    return parsed


def _text_of_parts(index: int, parts: Any, by_name: Mapping[str, CueSpec], cue_inputs: dict[str, Any]) -> str:
    if not isinstance(parts, Sequence) or isinstance(parts, (str, bytes)):
        raise ValueError(f"message {index}: content must be a string or a list of parts")
    text, previous = "", None
    for number, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            piece, current = str(part.get("text", "")), "text"
        elif kind in by_name:
            piece, current = by_name[kind].placeholder, "cue"
            if kind in cue_inputs:
                raise ValueError(f"message {index}, part {number}: a second {kind!r} part; a sample has one input "
                                 "per cue")
            cue_inputs[kind] = _cue_input(index, number, kind, part)
        else:
            raise ValueError(f"message {index}, part {number}: part type {kind!r} is neither 'text' nor one of the "
                             f"model's cues ({', '.join(by_name) or 'none'})")
        if previous is not None and not (previous == current == "cue"):
            text += "\n"
        text += piece
        previous = current
    return text


def _cue_input(index: int, number: int, cue: str, part: Mapping[str, Any]) -> Any:
    if part.get("features") is not None:
        return part["features"]
    for key in CUE_INPUT_KEYS:
        if part.get(key) is not None:
            return part[key]
    raise ValueError(f"message {index}, part {number}: the {cue!r} part has no input; give 'features' or 'path'")


def jinja_chat_template(template: ChatTemplate, cues: Sequence[CueSpec]) -> str:
    """``template`` as a Jinja chat template over messages with content parts (module docstring).

    The system text is the template's unless the first message is a system message; ``add_generation_prompt``
    changes nothing, as a user turn always ends with the assistant's role (LLAVIDAL's ``SeparatorStyle.TWO``).
    """
    placeholders = json.dumps({spec.name: spec.placeholder for spec in cues})
    user, assistant = template.roles
    return (
        "{%- set placeholders = " + placeholders + " -%}"
        "{%- set ns = namespace(system=" + json.dumps(template.system) + ") -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- if messages[0]['content'] is string -%}{%- set ns.system = messages[0]['content'] -%}"
        "{%- else -%}{%- set ns.system = messages[0]['content'] | selectattr('type', 'equalto', 'text') "
        "| map(attribute='text') | join('\\n') -%}{%- endif -%}"
        "{%- endif -%}"
        "{{- ns.system + " + json.dumps(template.sep) + " -}}"
        "{%- for message in messages if message['role'] != 'system' -%}"
        "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
        "{%- else -%}"
        "{%- set parts = namespace(text='', last='') -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{%- set piece = part['text'] -%}{%- set kind = 'text' -%}"
        "{%- else -%}{%- set piece = placeholders[part['type']] -%}{%- set kind = 'cue' -%}{%- endif -%}"
        "{%- if parts.last and not (parts.last == 'cue' and kind == 'cue') -%}"
        "{%- set parts.text = parts.text + '\\n' -%}{%- endif -%}"
        "{%- set parts.text = parts.text + piece -%}{%- set parts.last = kind -%}"
        "{%- endfor -%}"
        "{%- set text = parts.text -%}"
        "{%- endif -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{- " + json.dumps(f"{user}: ") + " + text + " + json.dumps(f"{template.sep}{assistant}:") + " -}}"
        "{%- else -%}"
        "{{- ' ' + text + " + json.dumps(template.sep2) + " -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )
