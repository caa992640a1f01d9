"""Which frames of a video to use: segment midpoints (the original's rule), uniform, or by frame rate.

All functions return sorted frame indices in ``[0, total_frames)``. A video with fewer frames than asked
gives every one of its frames once (the original never repeats frames); ``by_fps`` can give fewer.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLING_MODES = ("segments", "uniform", "fps")


def segment_midpoint_indices(total_frames: int, num_frames: int) -> list[int]:
    """The original ``get_seq_frames``: midpoints of ``num_frames`` equal segments of ``[0, total_frames-1]``.

    ``seg = (N-1)/K``; index ``i`` is ``(round(seg*i) + round(seg*(i+1))) // 2`` with numpy's
    round-half-to-even. The count is ``min(total_frames, num_frames)``, as the original's ``load_video``.
    """
    _check_counts(total_frames, num_frames)
    count = min(total_frames, num_frames)
    segment = float(total_frames - 1) / count
    return [(int(np.round(segment * i)) + int(np.round(segment * (i + 1)))) // 2 for i in range(count)]


def uniform_indices(total_frames: int, num_frames: int) -> list[int]:
    """``min(total_frames, num_frames)`` indices evenly spread from the first to the last frame (linspace)."""
    _check_counts(total_frames, num_frames)
    count = min(total_frames, num_frames)
    return [int(i) for i in np.round(np.linspace(0, total_frames - 1, count))]


def fps_indices(total_frames: int, video_fps: float, target_fps: float, max_frames: int) -> list[int]:
    """One frame every ``1/target_fps`` seconds, thinned uniformly to at most ``max_frames``."""
    _check_counts(total_frames, max_frames)
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise ValueError(f"the sampling frame rate must be a positive number, got {target_fps!r}")
    if not (video_fps and video_fps > 0 and math.isfinite(video_fps)):
        raise ValueError("the video has no usable frame rate: sample by segments or uniformly instead")
    step = video_fps / target_fps
    picked = sorted({min(total_frames - 1, int(round(k * step))) for k in range(math.ceil(total_frames / step))})
    if len(picked) > max_frames:
        picked = [picked[i] for i in uniform_indices(len(picked), max_frames)]
    return picked


def sample_frame_indices(total_frames: int, num_frames: int, mode: str = "segments", *,
                         video_fps: float | None = None, target_fps: float | None = None) -> list[int]:
    """Dispatch on ``mode`` (one of `SAMPLING_MODES`)."""
    if mode == "segments":
        return segment_midpoint_indices(total_frames, num_frames)
    if mode == "uniform":
        return uniform_indices(total_frames, num_frames)
    if mode == "fps":
        if target_fps is None:
            raise ValueError("sampling by fps needs a target frame rate")
        return fps_indices(total_frames, video_fps or 0.0, target_fps, num_frames)
    raise ValueError(f"unknown frame sampling {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")


def _check_counts(total_frames: int, num_frames: int) -> None:
    if total_frames <= 0:
        raise ValueError(f"the video has {total_frames} frames")
    if num_frames <= 0:
        raise ValueError(f"the number of frames to sample must be positive, got {num_frames}")
