"""Step 4 of ADL-X curation: a dense description of each video from its frame captions and its actions.

Prompts copied from ADL-X/LLAVIDAL ``adlx_curation/step4_WS_video_desc.py`` (`DESCRIBE_SYSTEM`,
`describe_messages`): the captions joined with spaces, the action sentence of ``action_mapping.json``
("Actions performed by the person in the video are ..."), a reply asked for as ``{"Q": ..., "A": ...}``.
The original asks gpt-3.5-turbo; here any `llavidal_curate.llm_replies` backend.

Output per video: ``OUT/<id>.json`` = ``{"video_id", "actions", "Q", "A"}``; ``OUT/dense_descriptions.json`` =
``{id: {"Q", "A"}}``, the original's format (`merge_descriptions`).
"""

from __future__ import annotations

import json
from pathlib import Path

from llavidal_core.errors import LlavidalError

MERGED_FILE = "dense_descriptions.json"
DEFAULT_MAX_TOKENS = 1024

DESCRIBE_SYSTEM = (
    "You will play two roles: a human asking questions related to describing a video and "
    "an intelligent chatbot designed for video description and dense captioning. "
    "Your task is to generate a detailed and descriptive paragraph based on the provided fragmented information about a video. "
    "------"
    "##TASK:"
    "Users will provide fragmented descriptions of a video, and you will generate ONE conversation-like question and answer related to describing the video in detail. "
    "The question should ask to describe the video content in detail. "
    "The answer should be a paraphrased and well-structured paragraph based on the provided description, with a minimum of 150 words and a maximum of 300 words. "
    "When the provided information is short, aim for a 150-word description, and when the provided information is more detailed, aim for very long descriptions up to 300-word description. "
    "------"
    "##INSTRUCTIONS:"
    "- The question must be like a human conversation and focused on describing the video in detail. "
    "- The answer must be a paraphrased version of the provided information, very detailed and descriptive, and within the specified word count. "
    "- Combine the information from different sections of the video into a single coherent summary, ignoring any repetitions."
    "- Compare the information across all fragments of video and remove or ignore any inconsistent information and do not say the summary comes from different fragments of the video."
    "- Give more emphasis on the actions, the objects, and the colors of the background and the objects."
    "- Give the sequence of actions happening in the video and the objects the person interacts with.")


class ActionMappingError(LlavidalError):
    """The action mapping file cannot be read or is not ``{video_id: sentence}``."""


def describe_messages(captions: list[str], actions: str) -> list[dict[str, str]]:
    """The original's two chat messages for one video (its ``annotate``)."""
    mega_caption = " ".join(captions) + "\n"
    user = (f"The fragmented video description is: {mega_caption}. The actions performed in the video are: {actions}. "
            '''Please generate the response in the form of a Python dictionary string with keys "Q" for question and "A" for answer. Each corresponding value should be the question and answer text respectively.'''
            '''For example, your response should look like this: {"Q": "Your question here...", "A": "Your answer here..."}.'''
            '''Emphasize that the answer should focus on describing the video content following the given instructions.''')
    return [{"role": "system", "content": DESCRIBE_SYSTEM}, {"role": "user", "content": user}]


def read_action_mapping(path: str | Path) -> dict[str, str]:
    """``{video_id: "Actions performed by the person in the video are ..."}`` (the original's
    ``action_mapping.json``); `ActionMappingError` naming the file when it is not that."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ActionMappingError(f"{path}: cannot read the action mapping ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.strip() for v in data.values()):
        raise ActionMappingError(f"{path}: expected {{video_id: action sentence}} with non-empty sentences")
    return data


def describe_video(session, video_id: str, captions: list[str], actions: str, max_tokens: int) -> dict:
    """The step's record for one video; `UnparsableLLMReply` when the LLM never answers ``{"Q", "A"}``."""
    from llavidal_curate.llm_replies import ask_json, parse_qa_pair

    pair = ask_json(session, "adlx_description", {"video_id": video_id}, describe_messages(captions, actions),
                    parse_qa_pair, max_tokens)
    return {"video_id": video_id, "actions": actions, "Q": pair["Q"], "A": pair["A"]}


def read_descriptions(source: str | Path) -> dict[str, str]:
    """``{video_id: description}`` (the ``A`` of each) from a describe step's folder or a merged file in the
    original's format (``{id: {"Q", "A"}}``); `LlavidalError` naming the file when malformed."""
    source = Path(source)
    paths = ([p for p in sorted(source.glob("*.json")) if p.name != MERGED_FILE] if source.is_dir() else [source])
    found: dict[str, str] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LlavidalError(f"{path}: cannot read the descriptions ({exc})") from None
        records = {data.get("video_id", path.stem): data} if source.is_dir() and isinstance(data, dict) else data
        if not isinstance(records, dict):
            raise LlavidalError(f"{path}: expected {{video_id: {{'Q': ..., 'A': ...}}}}")
        for video_id, record in records.items():
            if not isinstance(record, dict) or not isinstance(record.get("A"), str) or not record["A"].strip():
                raise LlavidalError(f"{path}: the description of {video_id!r} has no non-empty 'A'")
            found[str(video_id)] = record["A"]
    if not found:
        raise LlavidalError(f"{source}: no descriptions")
    return found


def merge_descriptions(out: str | Path) -> Path:
    """Write ``OUT/dense_descriptions.json`` (``{id: {"Q", "A"}}``) from the per-video files, atomically."""
    from llavidal_curate.step_runner import write_json_atomic

    out = Path(out)
    merged = {}
    for path in sorted(out.glob("*.json")):
        if path.name != MERGED_FILE:
            record = json.loads(path.read_text(encoding="utf-8"))
            merged[record["video_id"]] = {"Q": record["Q"], "A": record["A"]}
    return write_json_atomic(out / MERGED_FILE, merged)
