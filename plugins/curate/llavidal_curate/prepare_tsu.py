"""``llavidal prepare tsu-tc`` and ``llavidal prepare tsu-descriptions``: the Toyota Smarthome Untrimmed (TSU)
videos the ADLMCQ TSU-TC file and the TSU description evaluation reference.

tsu-tc copies ADL-X/LLAVIDAL ``scripts/data_processing/tsu_trim_actions.py``: each annotation CSV
``ANNOTATIONS/<P>/<video>.csv`` (header, then ``event,start_frame,end_frame`` rows; rows with non-integer
frames skipped) is grouped into clips of consecutive actions: an action joins the current group unless the
group already has 5 actions or would then last over 60 s (``(end - first start) / fps``); a closed group is
kept only with 4 or more actions. Clip n (from 1) spans frames ``[first start, last end)`` and is written as
``OUT/<P>/<video>/clips/clip_<n>.mp4`` (H.264) — the ``video_path`` scheme of LEGACY-TSU-TC.json, e.g.
``P03/P03T01C05/clips/clip_1.mp4`` — with ``OUT/<P>/<video>/metadata.json`` in the original's format
(written last: it marks the video done). The video is ``<video>.mp4`` found anywhere under ``VIDEOS``.

tsu-descriptions copies ``scripts/data_processing/tsu_trim_1sec_clips.py`` (one-minute clips despite its
name): ``int(duration // 60) + 1`` clips ``OUT/<video>_clip<i>.mp4`` (i from 1), clip i holding the frames
whose time is in ``[60 (i-1), min(60 i, duration))`` — the names ``eval_tsu_desc.py`` globs as
``<video>_*.mp4``. A last clip that would be empty (duration a multiple of 60) is not written (the
original's ffmpeg call would write an empty file). The original's log is written as
``OUT/logs/<video>_log.txt`` (kept out of the clips' folder so no reader takes it for a clip); it marks the
video done. Frames are re-encoded (the original stream-copies, cutting at key frames).
"""

from __future__ import annotations

import csv
import logging

from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_ACTIONS = 5
MIN_ACTIONS = 4
MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Action:
    event: str
    start_frame: int
    end_frame: int


def read_actions(path: Path) -> list[Action]:
    """The CSV's actions after its header row (``read_action_data``); rows whose frames are not integers are
    skipped with a warning."""
    actions = []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        next(rows, None)
        for number, row in enumerate(rows, 2):
            if not row:
                continue
            try:
                actions.append(Action(row[0], int(row[1]), int(row[2])))
            except (IndexError, ValueError):
                logger.warning("%s:%d: skipping invalid row %r", path, number, row)
    return actions


def group_actions(actions: list[Action], fps: float) -> list[list[Action]]:
    """``tsu_trim_actions.main``'s grouping (module docstring)."""
    clips, current = [], []
    for action in actions:
        if not current:
            current = [action]
            continue
        duration = (action.end_frame - current[0].start_frame) / fps
        if len(current) >= MAX_ACTIONS or duration > MAX_SECONDS:
            if len(current) >= MIN_ACTIONS:
                clips.append(current)
            current = [action]
        else:
            current.append(action)
    if len(current) >= MIN_ACTIONS:
        clips.append(current)
    return clips


def tc_metadata(clips: list[list[Action]], fps: float) -> dict:
    """``save_formatted_json``'s document."""
    formatted = []
    for number, clip in enumerate(clips, 1):
        start, end = clip[0].start_frame, clip[-1].end_frame
        formatted.append({
            "clip_number": number,
            "time_info": {"start_frame": start, "end_frame": end, "duration_frames": end - start,
                          "duration_seconds": round((end - start) / fps, 2)},
            "actions_info": {"num_actions": len(clip), "actions": [
                {"event": a.event, "start_frame": a.start_frame, "end_frame": a.end_frame,
                 "duration": round((a.end_frame - a.start_frame) / fps, 2)} for a in clip]},
        })
    return {"metadata": {"total_clips": len(clips), "fps": fps, "total_actions": sum(map(len, clips))},
            "clips": formatted}


def _write_ranges(video: Path, ranges: list[tuple[Path, float, float]], fps, *, by_time: bool) -> None:
    """One decoding pass of ``video`` writing each ``(path, start, end)`` range (frame indices, or seconds with
    ``by_time``; end exclusive) whose file does not exist yet."""
    from llavidal_curate.video_io import iter_frames, write_video

    pending = [(path, start, end) for path, start, end in ranges if not path.is_file()]
    if not pending:
        return
    buffers: dict[Path, list] = {path: [] for path, _, _ in pending}
    last_end = max(end for _, _, end in pending)
    for index, seconds, frame in iter_frames(video):
        position = seconds if by_time else index
        if position >= last_end:
            break
        for path, start, end in pending:
            if start <= position < end:
                buffers[path].append(frame)
        for path, start, end in pending:  # write a range as soon as it is complete, to bound memory
            if position >= end - (1e-9 if by_time else 1) and buffers.get(path):
                write_video(path, buffers.pop(path), fps)
    for path, _, _ in pending:
        frames = buffers.pop(path, None)
        if frames:
            write_video(path, frames, fps)
        elif not path.is_file():
            raise ValueError(f"{video}: no frames in the range of {path.name}")


def run_prepare_tsu_tc(annotations: Path, videos: Path, out: Path) -> int:
    """Cut every annotated TSU video into its TSU-TC clips (module docstring); exit code 0 or 3."""
    from llavidal_core.errors import UsageError

    from llavidal_curate.step_runner import StepItem, run_steps, write_json_atomic
    from llavidal_curate.video_io import video_info

    for name, folder in (("--annotations", annotations), ("--videos", videos)):
        if not Path(folder).is_dir():
            raise UsageError(f"{name} {folder}: no such folder")
    video_files = {path.stem: path for path in Path(videos).rglob("*.mp4") if not path.name.startswith(".")}
    items = []
    for csv_path in sorted(Path(annotations).glob("P*/*.csv")):
        participant, name = csv_path.parent.name, csv_path.stem
        items.append(StepItem(f"{participant}/{name}", str(csv_path),
                              (out / participant / name / "metadata.json",), (csv_path, video_files.get(name))))
    if not items:
        raise UsageError(f"{annotations}: no annotation CSVs (P*/<video>.csv)")

    def process(item):
        csv_path, video = item.payload
        if video is None:
            raise FileNotFoundError(f"no {csv_path.stem}.mp4 under {videos} for {csv_path}")
        fps = float(video_info(video).fps)
        clips = group_actions(read_actions(csv_path), fps)
        folder = item.outputs[0].parent
        ranges = [(folder / "clips" / f"clip_{n}.mp4", clip[0].start_frame, clip[-1].end_frame)
                  for n, clip in enumerate(clips, 1)]
        _write_ranges(video, ranges, video_info(video).fps, by_time=False)
        write_json_atomic(item.outputs[0], tc_metadata(clips, fps))

    return run_steps(items, out, process=process, description="prepare tsu-tc")


def run_prepare_tsu_descriptions(videos: Path, out: Path, *, clip_seconds: float = MAX_SECONDS) -> int:
    """Cut every ``VIDEOS/*.mp4`` into ``OUT/<video>_clip<i>.mp4`` (module docstring); exit code 0 or 3."""
    import datetime

    from llavidal_core.atomic_files import atomic_write_bytes
    from llavidal_core.errors import UsageError

    from llavidal_curate.step_runner import StepItem, run_steps
    from llavidal_curate.video_io import video_info

    if not Path(videos).is_dir():
        raise UsageError(f"--videos {videos}: no such folder")
    items = [StepItem(path.stem, str(path), (out / "logs" / f"{path.stem}_log.txt",), path)
             for path in sorted(Path(videos).glob("*.mp4")) if not path.name.startswith(".")]
    if not items:
        raise UsageError(f"{videos}: no .mp4 videos")

    def process(item):
        info = video_info(item.payload)
        duration = info.duration
        count = int(duration // clip_seconds) + 1
        ranges, log = [], [f"Original Video: {item.payload}", f"Total Duration: {datetime.timedelta(seconds=duration)}",
                           f"Number of Clips: {count}", ""]
        for i in range(count):
            start, end = i * clip_seconds, min((i + 1) * clip_seconds, duration)
            if end <= start:
                continue
            name = f"{item.key}_clip{i + 1}.mp4"
            ranges.append((out / name, start, end))
            log += [f"Clip {i + 1}:", f"  Name: {name}", f"  Start Time: {datetime.timedelta(seconds=start)}",
                    f"  End Time: {datetime.timedelta(seconds=end)}",
                    f"  Duration: {datetime.timedelta(seconds=end - start)}", ""]
        _write_ranges(item.payload, ranges, info.fps, by_time=True)
        item.outputs[0].parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(item.outputs[0], ("\n".join(log) + "\n").encode("utf-8"))

    return run_steps(items, out, process=process, description="prepare tsu-descriptions")



