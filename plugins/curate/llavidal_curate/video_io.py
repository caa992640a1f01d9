"""Video reading and atomic writing with PyAV for the curation steps, and the resize and crop they share.

Frames are uint8 RGB ``(H, W, 3)`` numpy arrays. `write_video` writes through `atomic_output_path`, so a
killed writer leaves no half video under the final name. Decoding errors are raised as `VideoReadError`
naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from llavidal_core.errors import LlavidalError

from llavidal_curate.step_runner import atomic_output_path

logger = logging.getLogger(__name__)

# the container format of each output suffix (the temp file's name ends in .tmp, so PyAV is told)
CONTAINER_FORMATS = {".mp4": "mp4", ".avi": "avi", ".mkv": "matroska", ".mov": "mov"}


class VideoReadError(LlavidalError):
    """A video that cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """``fps`` frames per second (the stream's average rate), ``duration`` seconds (container, else frames/fps),
    ``width``/``height`` pixels, ``num_frames`` as the container declares it (0 when unknown)."""

    fps: Fraction
    duration: float
    width: int
    height: int
    num_frames: int


def video_info(path: str | os.PathLike) -> VideoInfo:
    """`VideoInfo` of ``path`` without decoding; `VideoReadError` naming the file."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
            if fps <= 0:
                raise VideoReadError(f"{path}: unknown frame rate")
            frames = int(stream.frames or 0)
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = frames / float(fps)
            return VideoInfo(fps, duration, stream.codec_context.width, stream.codec_context.height, frames)
    except av.FFmpegError as exc:
        raise VideoReadError(f"{path}: cannot read video ({exc})") from exc


def iter_frames(path: str | os.PathLike) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, seconds, frame)`` for each decoded frame in order; `VideoReadError` naming the file on a
    decoding error (frames already yielded stay yielded)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                seconds = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 1)
                yield index, seconds, frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise VideoReadError(f"{path}: cannot decode video ({exc})") from exc


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction | float, *,
                codec: str = "libx264") -> int:
    """Encode RGB frames (all of one size; odd sizes are padded by one black row/column for yuv420p) to
    ``path`` atomically; returns the number of frames. ``ValueError`` when there are none."""
    import av

    path = Path(path)
    container_format = CONTAINER_FORMATS.get(path.suffix.lower())
    if container_format is None:
        raise ValueError(f"{path}: unknown video suffix; expected one of {', '.join(CONTAINER_FORMATS)}")
    rate = Fraction(fps).limit_denominator(1001 if codec != "mpeg4" else 65535)
    count = 0
    with atomic_output_path(path) as temp_path:
        with av.open(str(temp_path), "w", format=container_format) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    height, width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                if frame.shape[0] % 2 or frame.shape[1] % 2:
                    frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to write")
            for packet in stream.encode():
                container.mux(packet)
    return count


def resize_bilinear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, C)`` uint8 to ``size`` = (width, height) by bilinear interpolation with half-pixel
    centres and edge clamping, as OpenCV's ``cv2.resize`` (INTER_LINEAR) the original calls does (OpenCV
    rounds in fixed point, so values may differ from it by 1)."""
    width, height = size
    in_h, in_w = frame.shape[:2]
    if (in_w, in_h) == (width, height):
        return frame.copy()

    def axis(n_out: int, n_in: int):
        centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        centres = np.clip(centres, 0, n_in - 1)
        low = np.floor(centres).astype(np.int64)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, (centres - low)

    y0, y1, wy = axis(height, in_h)
    x0, x1, wx = axis(width, in_w)
    data = frame.astype(np.float32)
    top = data[y0] * (1 - wy)[:, None, None] + data[y1] * wy[:, None, None]
    out = top[:, x0] * (1 - wx)[None, :, None] + top[:, x1] * wx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def crop_padded(frame: np.ndarray, top_left: tuple[int, int], bottom_right: tuple[int, int]) -> np.ndarray:
    """The original's crop (``PAG_utils.process_frame`` / ``sh_human_cropping.process_frame``): when the box
    ``[x0, x1) x [y0, y1)`` is not inside the frame (``x0 < 0``, ``y0 < 0``, ``x1 >= W`` or ``y1 >= H``) the
    frame is first padded with black by the box's height above and below and its width left and right
    (``cv2.copyMakeBorder(..., BORDER_CONSTANT)``); the result is ``(y1 - y0, x1 - x0, C)``."""
    (x0, y0), (x1, y1) = top_left, bottom_right
    box_w, box_h = x1 - x0, y1 - y0
    if box_w <= 0 or box_h <= 0:
        raise ValueError(f"empty crop box {top_left}-{bottom_right}")
    height, width = frame.shape[:2]
    if x0 < 0 or y0 < 0 or x1 >= width or y1 >= height:
        frame = np.pad(frame, ((box_h, box_h), (box_w, box_w), (0, 0)))
        x0, x1, y0, y1 = x0 + box_w, x1 + box_w, y0 + box_h, y1 + box_h
    return frame[y0:y1, x0:x1]
