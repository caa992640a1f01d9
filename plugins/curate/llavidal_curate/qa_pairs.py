"""Step 5 of ADL-X curation: question-answer pairs from each video's description and captions, and the
instruction file ``llavidal train`` reads.

Copies ADL-X/LLAVIDAL ``adlx_curation/step5_QA_generation.py``: two prompts per video, one for summary
questions (`SUMMARY_SYSTEM`) and one for detail questions (`DETAILS_SYSTEM`), each given the video's
description (step 4's ``A``) and its captions concatenated without separator (the original's ``mega_caption``),
each asking for ``[{"Q": ..., "A": ...}, ...]`` (three pairs; any non-empty list is accepted). The original asks
gpt-3.5-turbo; here any `llavidal_curate.llm_replies` backend.

Output per video: ``OUT/<id>.json`` = ``{"video_id", "qa": [{"Q", "A"}, ...]}`` (summary pairs first).
`write_instruction_file` then writes the original's ``adlx_QAs_for_training.json``: one record per pair,
``{"id", <cue>: "<id><suffix>", ..., "conversations": [human, gpt]}``, the placeholders after the question for
the even pairs of a video and before it for the odd ones, as the original does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MAX_TOKENS = 1024
INSTRUCTION_FILE = "adlx_QAs_for_training.json"
CUE_FILES = {"video": ("<video>", ".pkl"), "object": ("<object>", "_object.pkl"), "pose": ("<human_pose>", "_pose.pkl")}
"""Cue -> (placeholder, feature file suffix), as the original's training records name them."""
DEFAULT_CUES = ("video", "object", "pose")

SUMMARY_SYSTEM = (
    "You play two roles: a human asking questions related to summarizing a video and an intelligent chatbot designed for video summarization and dense captioning. "
    "Your task is video summarization. "
    "As an AI assistant, assume that you have watched the video and generated the provided caption as the summary of the video. "
    "Your task is to play the role of a human who asks three questions related to summarizing the video and then play the role of an AI assistant that provides paraphrased answers based on the video content and the provided caption."
    "------"
    "##TASK:"
    "Users will provide a caption of the video alongside dense caption describing detected objects in that scene, and you will generate a set of three conversation-like questions related to summarizing the video. "
    "The questions and answers can be very similar, but they should all focus on summarizing the video content. "
    "The answers should be paraphrased versions of the provided caption and the dense caption with the object detections. "
    "You have information about the video based on the provided caption and have summarized the events in it. You also have the dense caption with the object and scene details."
    "Generate THREE different questions asking to summarize the video and provide detailed answers to each based on the caption and the dense caption. "
    "------"
    "##INSTRUCTIONS:"
    "- The questions must be like a human conversation and focused on summarizing the video. "
    "- The answers must be paraphrased versions of the provided caption and the dense caption, and they should be detailed and descriptive. "
    "------"
    "##SAMPLE QUESTIONS:"
    "- Can you provide a summary of the video?"
    "- What are the main events in the video?"
    "- Could you briefly describe the video content?")

DETAILS_SYSTEM = (
    "You play two roles: a human asking questions related a video and an intelligent chatbot designed for video summarization and dense captioning. "
    "Your task is extracting diverse video information. "
    "As an AI assistant, assume that you have watched the video and generated the provided caption as the summary of the video. "
    "Your task is to play the role of a human who asks three questions related to summarizing the video and then play the role of an AI assistant that provides paraphrased answers based on the video content and the provided caption."
    "------"
    "##TASK:"
    "Users will provide a caption of the video alongside dense caption describing detected objects,setting and details in that scene, and you will generate a set of three conversation-like questions related to the video. "
    "The questions and answers can be very similar, but they should all focus on the details of the video content. "
    "The answers should be paraphrased versions of the provided caption and the dense caption with the object and scene details. "
    "You have information about the video based on the provided caption and have summarized the actions in it. You also have the dense caption with the scene details."
    "Generate THREE different questions asking the details of the video and provide detailed answers to each based on the caption and the dense caption and one question should be about what actions are happening which should come from captions of the video. "
    "------"
    "##INSTRUCTIONS:"
    "- The questions must be like a human conversation and focused on finding the intricate and unique details of the video. "
    "- The answers must be paraphrased versions of the provided caption and the dense caption, and they should be detailed and descriptive. "
    "------"
    "##SAMPLE QUESTIONS:"
    "- What are the actions occuring sequentially in the video?"
    "- What are the colors of the outfits of the person in the video? "
    "- What are the objects in the scene?"
    "- What is person doing?")

_LIST_FORMAT = (
    "Please attempt to form question and answer pairs based on the two sets of text."
    '''Please generate the response in the form of a Python list of dictionary string with keys "Q" for question and "A" for answer. Each corresponding value should be the question and answer text respectively. '''
    '''For example, your response should look like this: [{"Q": "Your first question here...", "A": "Your first answer here..."}, {"Q": "Your first question here...", "A": "Your first answer here..."}, {"Q": "Your first question here...", "A": "Your first answer here..."}]. ''')


def qa_messages(kind: str, description: str, captions: Sequence[str]) -> list[dict[str, str]]:
    """The original's chat messages of ``kind`` ``"summary"`` (its ``completion_0``) or ``"details"``
    (``completion_1``) for one video."""
    mega_caption = "".join(captions)
    head = f"The video caption is: {description}. The additional dense caption is: {mega_caption}"
    if kind == "summary":
        user = (head + "Generate three different questions on summarizing the video, and provide answers that are "
                "paraphrased versions of the given caption and the dense caption. " + _LIST_FORMAT
                + "Emphasize that the questions and answers can be very similar, but they should all focus on "
                  "summarizing the video content.")
        return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": user}]
    if kind == "details":
        user = (head + "Generate three different questions on the details of the video, and provide answers that "
                "are paraphrased versions of the given caption and the dense caption. " + _LIST_FORMAT
                + "Emphasize that the questions and answers can be very similar, but they should all focus on the "
                  "various details of the video content and understanding what actions are happening."
                  "Include at least one question about the sequence of actions happening in the video.")
        return [{"role": "system", "content": DETAILS_SYSTEM}, {"role": "user", "content": user}]
    raise ValueError(f"unknown question kind {kind!r} (summary or details)")


def qa_for_video(session, video_id: str, description: str, captions: Sequence[str], max_tokens: int) -> dict:
    """The step's record for one video: summary then detail pairs; `UnparsableLLMReply` when either reply never
    parses as a list of ``{"Q", "A"}`` (nothing is written for the video then)."""
    from llavidal_curate.llm_replies import ask_json, parse_qa_list

    pairs = []
    for kind in ("summary", "details"):
        pairs += ask_json(session, f"adlx_qa_{kind}", {"video_id": video_id},
                          qa_messages(kind, description, captions), parse_qa_list, max_tokens)
    return {"video_id": video_id, "qa": pairs}


def instruction_records(video_id: str, pairs: Sequence[dict[str, str]],
                        cues: Sequence[str] = DEFAULT_CUES) -> list[dict]:
    """The original's training records of one video's pairs (module docstring). ValueError for an unknown cue."""
    unknown = [cue for cue in cues if cue not in CUE_FILES]
    if unknown or not cues:
        raise ValueError(f"unknown cue(s) {unknown} (choose from {', '.join(CUE_FILES)})")
    placeholders = "".join(CUE_FILES[cue][0] for cue in cues)
    records = []
    for index, pair in enumerate(pairs):
        record = {"id": video_id}
        record.update({cue: f"{video_id}{CUE_FILES[cue][1]}" for cue in cues})
        human = f"{pair['Q']}\n{placeholders}" if index % 2 == 0 else f"{placeholders}\n{pair['Q']}"
        record["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": pair["A"]}]
        records.append(record)
    return records


def write_instruction_file(out: str | Path, cues: Sequence[str] = DEFAULT_CUES,
                           path: str | Path | None = None) -> tuple[Path, int]:
    """Write the instruction file (default ``OUT/adlx_QAs_for_training.json``) from every per-video file in
    ``OUT``, videos sorted by id, atomically; returns (path, number of records)."""
    from llavidal_curate.step_runner import write_json_atomic

    out = Path(out)
    target = Path(path) if path else out / INSTRUCTION_FILE
    records = []
    for source in sorted(out.glob("*.json")):
        if source.resolve() == target.resolve() or source.name == INSTRUCTION_FILE:
            continue
        record = json.loads(source.read_text(encoding="utf-8"))
        records += instruction_records(record["video_id"], record["qa"], cues)
    write_json_atomic(target, records)
    return target, len(records)
