"""``llavidal curate stitch``: concatenate the person-cropped NTU clips of each ADL-X video (ADL-X step 2).

Copies ADL-X/LLAVIDAL ``adlx_curation/step2_temporal_stitching.py``: for each ``name → [clip, ...]`` of
``video_mapping.json`` the clips found in the clips folder are concatenated, in the mapping's order, into
``OUT/<name>.mp4`` (H.264, as the original's ``write_videofile(codec='libx264')``); a missing or
unreadable clip is reported and left out, the rest stitched; a video none of whose clips can be read fails.

Beside each video, ``OUT/<name>.json`` keeps the action sequence for the describe step::

    {"video": "001_video_001.mp4", "fps": 30.0, "sentence": "<action_mapping.json's sentence or null>",
     "parts": [{"clip": "S011C002P001R001A001_rgb.avi", "action_id": "A001", "action": "drink water",
                "start_frame": 0, "end_frame": 103}, ...],            # end exclusive, in the output video
     "skipped": [{"clip": "...", "reason": "..."}]}

``action`` is the part's label from the sentence (``"... are a, b, c."`` split at commas) when the sentence
lists as many actions as the mapping lists clips, else null. Clips are looked up as ``CLIPS/<clip>``, then
``CLIPS/rgb/<clip>`` (person-crop's layout). Parts whose frame size differs from the first part's are
resized to it; the output's frame rate is the first part's (the original's moviepy resamples to the
highest rate; NTU clips are all 30 fps). The sidecar is written after the video: it marks the video done.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

NTU_ACTION = re.compile(r"A(\d{3})")


def read_mapping(path: Path, what: str) -> dict:
    """A JSON object file; `UsageError` naming the file when it is missing or not an object."""
    from llavidal_core.errors import UsageError

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the {what} ({exc})") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{path}: the {what} must be a JSON object")
    return value


def sentence_actions(sentence: str | None) -> list[str] | None:
    """The actions an ``action_mapping.json`` sentence lists: the text after ``" are "`` split at commas."""
    if not sentence:
        return None
    text = sentence.split(" are ", 1)[-1].strip().rstrip(".")
    return [part.strip() for part in text.split(",") if part.strip()]


def find_clip(clips: Path, name: str) -> Path | None:
    for candidate in (clips / name, clips / "rgb" / name):
        if candidate.is_file():
            return candidate
    return None


def stitch_video(name: str, parts: list[str], clips: Path, out: Path, sentence: str | None = None) -> list[str]:
    """Write ``out/<name>.mp4`` and ``out/<name>.json``; return the problems (skipped clips) as text.
    `ValueError` when no clip can be read."""
    from llavidal_curate.step_runner import write_json_atomic
    from llavidal_curate.video_io import VideoReadError, iter_frames, resize_bilinear, video_info, write_video

    labels = sentence_actions(sentence)
    if labels is not None and len(labels) != len(parts):
        labels = None
    decoded, skipped = [], []
    for index, clip in enumerate(parts):
        path = find_clip(clips, clip)
        if path is None:
            skipped.append({"clip": clip, "reason": f"missing: no {clips / clip}"})
            continue
        try:
            fps = video_info(path).fps
            frames = [frame for _, _, frame in iter_frames(path)]
            if not frames:
                raise VideoReadError(f"{path}: no frames")
        except VideoReadError as exc:
            skipped.append({"clip": clip, "reason": f"unreadable: {exc}"})
            continue
        decoded.append((index, clip, fps, frames))
    if not decoded:
        raise ValueError(f"{name}: none of its {len(parts)} clips could be read: "
                         + "; ".join(item["reason"] for item in skipped))
    height, width = decoded[0][3][0].shape[:2]
    fps = decoded[0][2]
    record, start = [], 0
    for index, clip, _, frames in decoded:
        action = NTU_ACTION.search(clip)
        record.append({"clip": clip, "action_id": action.group(0) if action else None,
                       "action": labels[index] if labels else None,
                       "start_frame": start, "end_frame": start + len(frames)})
        start += len(frames)

    def all_frames():
        for _, _, _, frames in decoded:
            for frame in frames:
                yield frame if frame.shape[:2] == (height, width) else resize_bilinear(frame, (width, height))

    write_video(out / f"{name}.mp4", all_frames(), fps, codec="libx264")
    write_json_atomic(out / f"{name}.json", {"video": f"{name}.mp4", "fps": float(fps), "sentence": sentence,
                                             "parts": record, "skipped": skipped})
    return [f"{name}: left out {item['clip']} ({item['reason']})" for item in skipped]


def run_stitch(mapping_path: Path, clips: Path, out: Path, action_mapping: Path | None = None) -> int:
    """Stitch every video of ``mapping_path`` (module docstring); exit code 0, or 3 when a clip was left out
    or a video failed."""
    from llavidal_core.errors import UsageError

    from llavidal_curate.step_runner import StepItem, run_steps

    mapping = read_mapping(mapping_path, "video mapping")
    sentences = read_mapping(action_mapping, "action mapping") if action_mapping else {}
    if not Path(clips).is_dir():
        raise UsageError(f"--clips {clips}: no such folder")
    items = []
    for name, parts in mapping.items():
        if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
            raise UsageError(f"{mapping_path}: {name!r} must map to a list of clip file names")
        if "/" in name or name.startswith("."):
            raise UsageError(f"{mapping_path}: {name!r} is not a plain video name")
        items.append(StepItem(name, f"{mapping_path}:{name}", (out / f"{name}.mp4", out / f"{name}.json"),
                              (parts, sentences.get(name))))

    def process(item):
        parts, sentence = item.payload
        return stitch_video(item.key, parts, Path(clips), Path(out), sentence)

    return run_steps(items, out, process=process, description="stitch")
