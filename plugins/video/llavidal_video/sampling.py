"""Which frames of a video to use: segment midpoints (the original's rule), uniform, or by frame rate.

All functions return sorted frame indices in ``[0, total_frames)``. ``segments`` and ``uniform`` spread
their picks over frame *indices* (so on a variable-frame-rate file they are not evenly spaced in time);
``fps`` picks by presentation *time*: the frames nearest to one target time every ``1/fps`` seconds. A
video with fewer frames than asked gives every one of its frames once (the original never repeats frames);
``fps`` can give fewer (a frame nearest to two target times is taken once).
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


def presentation_times(raw_seconds, total_frames: int, video_fps: float) -> np.ndarray | None:
    """Each frame's presentation time in seconds, ``(total_frames,)`` float64, strictly increasing.

    ``raw_seconds`` are the decoder's timestamps in display order; they are used when there is one per
    frame, all finite and strictly increasing. Otherwise (AVI and other containers without per-frame
    times, missing or repeated timestamps) the frames are taken as evenly spaced at ``video_fps``; ``None``
    when that rate is unusable too.
    """
    times = None if raw_seconds is None else np.asarray(raw_seconds, dtype=np.float64)
    if times is not None and len(times) == total_frames > 0 and np.all(np.isfinite(times)) \
            and np.all(np.diff(times) > 0):
        return times
    if video_fps and video_fps > 0 and math.isfinite(video_fps) and total_frames > 0:
        return np.arange(total_frames, dtype=np.float64) / video_fps
    return None


def fps_indices(times: np.ndarray | None, target_fps: float, max_frames: int) -> list[int]:
    """The frames nearest to one target time every ``1/target_fps`` seconds, thinned uniformly to at most
    ``max_frames``.

    ``times`` are the frames' presentation times in seconds (`presentation_times`). The video lasts from
    its first frame to the end of its last one (its last frame interval is taken as that frame's
    duration); the target times are ``first + k / target_fps`` within it. Each target takes the frame with
    the nearest timestamp (the earlier one on a tie); a frame nearest to several targets is taken once.
    Raises ``ValueError`` when ``target_fps`` is not a positive number or ``times`` is ``None``.
    """
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise ValueError(f"the sampling frame rate must be a positive number, got {target_fps!r}")
    if times is None:
        raise ValueError("the video has no usable timestamps or frame rate: sample by segments or uniformly instead")
    _check_counts(len(times), max_frames)
    last_duration = times[-1] - times[-2] if len(times) > 1 else 1.0 / target_fps
    duration = times[-1] - times[0] + last_duration
    num_targets = max(1, math.ceil(round(duration * target_fps, 9)))
    targets = times[0] + np.arange(num_targets) / target_fps
    picked = sorted({int(i) for i in _nearest_frames(times, targets)})
    if len(picked) > max_frames:
        picked = [picked[i] for i in uniform_indices(len(picked), max_frames)]
    return picked


def _nearest_frames(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each target time, the index of the frame whose time is nearest (the earlier one on a tie)."""
    if len(times) == 1:
        return np.zeros(len(targets), dtype=np.int64)
    after = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
    before = after - 1
    return np.where(targets - times[before] <= times[after] - targets, before, after)


def sample_frame_indices(total_frames: int, num_frames: int, mode: str = "segments", *,
                         video_fps: float | None = None, target_fps: float | None = None,
                         timestamps=None) -> list[int]:
    """Dispatch on ``mode`` (one of `SAMPLING_MODES`); ``fps`` uses ``timestamps`` (seconds, one per frame,
    see `presentation_times`) or, without them, frames evenly spaced at ``video_fps``."""
    if mode == "segments":
        return segment_midpoint_indices(total_frames, num_frames)
    if mode == "uniform":
        return uniform_indices(total_frames, num_frames)
    if mode == "fps":
        if target_fps is None:
            raise ValueError("sampling by fps needs a target frame rate")
        _check_counts(total_frames, num_frames)
        return fps_indices(presentation_times(timestamps, total_frames, video_fps or 0.0), target_fps, num_frames)
    raise ValueError(f"unknown frame sampling {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")


def _check_counts(total_frames: int, num_frames: int) -> None:
    if total_frames <= 0:
        raise ValueError(f"the video has {total_frames} frames")
    if num_frames <= 0:
        raise ValueError(f"the number of frames to sample must be positive, got {num_frames}")
