"""``llavidal curate person-crop``: person-augmented NTU RGB+D clips (ADL-X step 1).

Copies ADL-X/LLAVIDAL ``adlx_curation/step1_person_augmented_generation.py`` with ``PAG_utils.py``
(``npy_to_keypoints``, ``clamp_keypoints``, ``get_bbox``, ``process_frame``), reading the ``.skeleton``
text files directly (the original read ``txt2npy.py``'s ``.skeleton.npy`` dicts):

- keypoints of a frame: the colour-frame ``colorX/colorY`` pixels of every body's 25 joints, ``(B*25, 2)``
  with B the most bodies any frame holds; body slot k of a frame is its k-th body; slots a frame lacks are
  given body slot 0's keypoints, and a frame without bodies is all zeros (``npy_to_keypoints``);
- NaN coordinates are replaced by linear interpolation over the flattened ``(T, B*25, 2)`` array (so an x may
  be filled from y neighbours, as the original does), then x is clipped to ``[0, W]``, y to ``[0, H]``
  (``clamp_keypoints``);
- box: the integer bounding rectangle of the keypoints (``cv2.boundingRect``: ``w = max - min + 1``), its
  centre ``(x + w//2, y + h//2)``, a box of ``(w + slack, h + slack)`` around it, corners
  ``centre -/+ box//2`` (``get_bbox``, slack 64);
- crop: black padding when the box leaves the frame, crop, resize to 224x224; keypoints shifted by the box's
  top-left corner and scaled by the resize ratios (``process_frame``);
- the skeleton is written alongside with each present body's colour coordinates replaced by the adjusted
  ones (depth pixels and camera-space joints unchanged; absent bodies untouched, as the original).

Output: ``OUT/rgb/<id>_rgb.avi`` (MPEG-4 part 2, the original's ``FMP4``, at the source frame rate) and
``OUT/skeletons/<id>.skeleton``. A video without a ``.skeleton`` is skipped with a warning (the original
skips it silently). The frames written are the skeleton's frame count; a video with fewer frames fails.

Differences: bodies are ordered by first appearance in the file (the reader's order), not by their
position inside each frame; ``nbodys`` is taken per frame (the original's is shifted by empty frames).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SLACK = 64
OUTPUT_SIZE = (224, 224)
COLOR_X = 2  # index of colorX in llavidal_pose.skeleton.JOINT_EXTRA_FIELDS; colorY follows
NTU_VIDEO = re.compile(r"(S\d{3}C\d{3}P\d{3}R\d{3}A\d{3})_rgb\.avi$")


def frame_keypoints(sequence) -> tuple[np.ndarray, np.ndarray]:
    """``(T, B*25, 2)`` float64 colour keypoints (slots filled as ``npy_to_keypoints``) and ``(T, B)`` int
    slot → body index (-1 for a slot the frame lacks). `ValueError` for a skeleton without colour pixels."""
    extra = sequence.joint_extra
    if extra is None:
        raise ValueError(f"{sequence.source}: has no colour-frame joint pixels (colorX/colorY)")
    num_frames, num_joints = sequence.num_frames, extra.shape[2]
    present = sequence.present
    slots = max(1, int(present.sum(axis=1).max(initial=0)))
    keypoints = np.zeros((num_frames, slots * num_joints, 2), dtype=np.float64)
    slot_body = np.full((num_frames, slots), -1, dtype=np.int64)
    for t in range(num_frames):
        for k, m in enumerate(np.flatnonzero(present[t])):
            slot_body[t, k] = m
            keypoints[t, k * num_joints:(k + 1) * num_joints] = extra[t, m, :, COLOR_X:COLOR_X + 2]
        for k in range(int(present[t].sum()), slots):
            keypoints[t, k * num_joints:(k + 1) * num_joints] = keypoints[t, :num_joints]
    return keypoints, slot_body


def clamp_keypoints(keypoints: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """``PAG_utils.clamp_keypoints``: NaNs interpolated over the flattened array, x clipped to ``[0, W]``,
    y to ``[0, H]``. `ValueError` when every value is NaN."""
    out = keypoints.copy()
    mask = np.isnan(out)
    if mask.all():
        raise ValueError("every colour keypoint is NaN")
    out[mask] = np.interp(np.flatnonzero(mask), np.flatnonzero(~mask), out[~mask])
    out[:, :, 0] = np.clip(out[:, :, 0], 0, frame_w)
    out[:, :, 1] = np.clip(out[:, :, 1], 0, frame_h)
    return out


def bounding_box(points: np.ndarray, slack: int = SLACK) -> tuple[tuple[int, int], tuple[int, int]]:
    """``PAG_utils.get_bbox`` of ``(N, 2)`` pixel points: (top-left, bottom-right) corners."""
    pts = points.astype(int)
    x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
    w, h = int(pts[:, 0].max()) - x + 1, int(pts[:, 1].max()) - y + 1
    cx, cy = x + w // 2, y + h // 2
    box_w, box_h = w + slack, h + slack
    return (cx - box_w // 2, cy - box_h // 2), (cx + box_w // 2, cy + box_h // 2)


def adjust_keypoints(points: np.ndarray, top_left, bottom_right, size=OUTPUT_SIZE) -> np.ndarray:
    """Keypoints in the resized crop's pixels (``process_frame``): minus the top-left corner, times
    ``size / box``."""
    (x0, y0), (x1, y1) = top_left, bottom_right
    out = points.astype(np.float64).copy()
    out[:, 0] = (out[:, 0] - x0) * (size[0] / (x1 - x0))
    out[:, 1] = (out[:, 1] - y0) * (size[1] / (y1 - y0))
    return out


def crop_ntu_video(video: Path, skeleton: Path, out_video: Path, out_skeleton: Path, *, slack: int = SLACK,
                   size: tuple[int, int] = OUTPUT_SIZE) -> int:
    """Crop one video around its bodies and write the video and the adjusted skeleton (both atomically);
    returns the frame count. Errors (`VideoReadError`, `SkeletonFormatError`, `ValueError`) name the file."""
    from llavidal_pose.skeleton import read_skeleton_file, write_skeleton_file

    from llavidal_curate.step_runner import atomic_output_path
    from llavidal_curate.video_io import crop_padded, iter_frames, resize_bilinear, video_info, write_video

    sequence = read_skeleton_file(skeleton)
    info = video_info(video)
    keypoints, slot_body = frame_keypoints(sequence)
    keypoints = clamp_keypoints(keypoints, info.width, info.height)
    num_joints = sequence.joint_extra.shape[2]
    new_colour = {m: body.joint_extra[:, :, COLOR_X:COLOR_X + 2].astype(np.float64).copy()
                  for m, body in enumerate(sequence.bodies)}
    rows = {m: {int(f): r for r, f in enumerate(body.frames)} for m, body in enumerate(sequence.bodies)}

    def cropped():
        frames = iter_frames(video)
        for t in range(sequence.num_frames):
            item = next(frames, None)
            if item is None:
                raise ValueError(f"{video}: has {t} frames, its skeleton {skeleton.name} has {sequence.num_frames}")
            top_left, bottom_right = bounding_box(keypoints[t], slack)
            adjusted = adjust_keypoints(keypoints[t], top_left, bottom_right, size)
            for k, m in enumerate(slot_body[t]):
                if m >= 0:
                    new_colour[m][rows[m][t]] = adjusted[k * num_joints:(k + 1) * num_joints]
            yield resize_bilinear(crop_padded(item[2], top_left, bottom_right), size)
        frames.close()

    count = write_video(out_video, cropped(), info.fps, codec="mpeg4")
    bodies = []
    for m, body in enumerate(sequence.bodies):
        extra = body.joint_extra.copy()
        extra[:, :, COLOR_X:COLOR_X + 2] = new_colour[m]
        bodies.append(dataclasses.replace(body, joint_extra=extra))
    with atomic_output_path(out_skeleton) as temp_path:
        write_skeleton_file(temp_path, dataclasses.replace(sequence, bodies=tuple(bodies)))
    return count


def run_person_crop(videos: Path, skeletons: Path, out: Path, *, slack: int = SLACK,
                    size: tuple[int, int] = OUTPUT_SIZE) -> int:
    """Crop every ``<id>_rgb.avi`` under ``videos`` that has ``<id>.skeleton`` under ``skeletons`` (searched
    recursively) into ``out`` (module docstring); exit code 0 or 3 (`llavidal_curate.step_runner`)."""
    from llavidal_core.errors import UsageError

    from llavidal_curate.step_runner import StepItem, run_steps

    for name, folder in (("--videos", videos), ("--skeletons", skeletons)):
        if not Path(folder).is_dir():
            raise UsageError(f"{name} {folder}: no such folder")
    skeleton_files = {path.name[:-len(".skeleton")]: path for path in Path(skeletons).rglob("*.skeleton")}
    items, missing = [], []
    for path in sorted(Path(videos).rglob("*_rgb.avi")):
        match = NTU_VIDEO.search(path.name)
        if match is None or path.name.startswith("."):
            continue
        video_id = match.group(1)
        if video_id not in skeleton_files:
            missing.append(path.name)
            continue
        items.append(StepItem(video_id, str(path), (out / "rgb" / f"{video_id}_rgb.avi",
                                                    out / "skeletons" / f"{video_id}.skeleton"),
                              (path, skeleton_files[video_id])))
    if missing:
        logger.warning("%d video(s) without a .skeleton in %s are skipped (as the original does), e.g. %s",
                       len(missing), skeletons, missing[0])
    if not items:
        raise UsageError(f"no NTU videos (<id>_rgb.avi) with skeletons under {videos} and {skeletons}")

    def process(item):
        video, skeleton = item.payload
        crop_ntu_video(video, skeleton, *item.outputs, slack=slack, size=size)

    return run_steps(items, out, process=process, description="person-crop")


__all__ = ["OUTPUT_SIZE", "SLACK", "adjust_keypoints", "bounding_box", "clamp_keypoints", "crop_ntu_video",
           "frame_keypoints", "run_person_crop"]
