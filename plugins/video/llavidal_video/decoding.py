"""Reading frames out of video files: one small reader interface over decord and PyAV.

`decode_video` is the unit of work: it opens a file, counts its frames, asks a callback which frame indices
to use, fetches those frames in chunks (each chunk optionally shrunk by a ``transform`` at once, so a 1080p
video never sits in memory whole) and returns a `DecodedVideo`. Whatever goes wrong on the way, at open or
at any frame, becomes one `VideoDecodeError` naming the file. With ``decoder="auto"`` decord is tried first
(the original's decoder) and PyAV second, e.g. for AV1, which decord's bundled FFmpeg 4.1 cannot read.

Decoders may disagree on a file's frame count (nasa_13013.mp4: 390 frames in decord, 325 in PyAV); the
decoder that was used is recorded in `DecodedVideo.decoder`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llavidal_core.errors import LlavidalError

DECODERS = ("auto", "decord", "pyav")
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
    ".ogv",
})
DEFAULT_CHUNK_SIZE = 16


class VideoDecodeError(LlavidalError):
    """A video could not be decoded (corrupt, unsupported codec, no frames, not a video)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return type(self), (self.path, self.reason)


class FrameReader(Protocol):
    """An open video: its frame count and rate, and random access to RGB frames."""

    name: str
    num_frames: int
    fps: float

    def read(self, indices: Sequence[int], chunk_size: int) -> Iterator[np.ndarray]:
        """Yield the frames at sorted ``indices`` as uint8 ``(t, H, W, 3)`` arrays of at most ``chunk_size``."""

    def close(self) -> None: ...


class DecordReader:
    """decord's ``VideoReader`` on the CPU, exactly as the original extraction script opens videos."""

    name = "decord"

    def __init__(self, path: str, num_threads: int = 0) -> None:
        from decord import VideoReader, cpu

        self._reader = VideoReader(path, ctx=cpu(0), num_threads=num_threads)
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps() or 0.0)

    def read(self, indices: Sequence[int], chunk_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(indices), chunk_size):
            yield self._reader.get_batch(list(indices[start:start + chunk_size])).asnumpy()

    def close(self) -> None:
        self._reader = None


class PyAVReader:
    """PyAV (FFmpeg bundled in its wheel): decodes forward through the stream, converting only needed frames.

    The frame count comes from the container (``stream.frames``) or, when it says nothing, from counting
    the stream's packets; `read` raises `FrameCountMismatch` if decoding ends before a requested index.
    """

    name = "pyav"

    def __init__(self, path: str, num_threads: int = 0) -> None:
        import av

        self._path = path
        self._threads = num_threads
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            count = stream.frames
            if not count:
                count = sum(1 for packet in container.demux(stream) if packet.size)
        self.num_frames = int(count)

    def read(self, indices: Sequence[int], chunk_size: int) -> Iterator[np.ndarray]:
        import av

        wanted = list(indices)
        if not wanted:
            return
        chunk: list[np.ndarray] = []
        position = decoded = 0
        with av.open(self._path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self._threads
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                while position < len(wanted) and wanted[position] == index:
                    chunk.append(frame.to_ndarray(format="rgb24"))
                    position += 1
                    if len(chunk) == chunk_size:
                        yield np.stack(chunk)
                        chunk = []
                if position == len(wanted):
                    break
            else:
                if position < len(wanted):
                    raise FrameCountMismatch(decoded)
        if chunk:
            yield np.stack(chunk)

    def close(self) -> None:
        pass


class FrameCountMismatch(Exception):
    """The stream held fewer frames than its container said (PyAV); ``decoded`` is the true count."""

    def __init__(self, decoded: int) -> None:
        super().__init__(f"the stream ended after {decoded} frames")
        self.decoded = decoded


READERS: dict[str, Callable[..., FrameReader]] = {"decord": DecordReader, "pyav": PyAVReader}


@dataclass
class DecodedVideo:
    """The sampled frames of one video and where they came from."""

    path: str
    frames: Any  # whatever the transform returns (by default a uint8 (T, 3, H, W) torch tensor)
    indices: list[int]
    total_frames: int
    fps: float
    decoder: str


def available_decoders() -> list[str]:
    """The decoders importable here, in `decode_video`'s order of preference."""
    import importlib.util

    return [name for name, module in (("decord", "decord"), ("pyav", "av")) if importlib.util.find_spec(module)]


def to_nchw_tensor(chunk: np.ndarray):
    """The default per-chunk transform: uint8 ``(t, H, W, 3)`` array → uint8 ``(t, 3, H, W)`` tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2).contiguous()


def decode_video(path: str | os.PathLike, choose_indices: Callable[[int, float], Sequence[int]], *,
                 decoder: str = "auto", transform: Callable[[np.ndarray], Any] | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, num_threads: int = 0) -> DecodedVideo:
    """Decode the frames ``choose_indices(total_frames, fps)`` of ``path`` as one unit.

    ``transform`` maps each uint8 ``(t, H, W, 3)`` chunk to a tensor (default `to_nchw_tensor`); the chunks
    are concatenated along the first axis. Raises `VideoDecodeError` (naming the file and every decoder's
    reason) when no decoder can decode the whole selection.
    """
    path = str(path)
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "no such file")
    names = available_decoders() if decoder == "auto" else [decoder]
    if not names:
        raise VideoDecodeError(path, "no video decoder is installed (pip install decord or av)")
    transform = transform or to_nchw_tensor
    reasons = []
    for name in names:
        try:
            return _decode_with(READERS[name], path, choose_indices, transform, chunk_size, num_threads)
        except ImportError as exc:
            reasons.append(f"{name} is not installed ({exc})")
        except Exception as exc:  # noqa: BLE001 - decoders fail in many ways; each becomes a reason
            reasons.append(f"{name}: {_one_line(exc)}")
    raise VideoDecodeError(path, "cannot decode: " + "; ".join(reasons))


def _decode_with(reader_class, path: str, choose_indices, transform, chunk_size: int,
                 num_threads: int) -> DecodedVideo:
    reader = reader_class(path, num_threads=num_threads)
    try:
        total = reader.num_frames
        for _attempt in range(2):
            if total <= 0:
                raise ValueError("the video has no frames")
            indices = [int(i) for i in choose_indices(total, reader.fps)]
            if not indices or any(not 0 <= i < total for i in indices) or indices != sorted(indices):
                raise ValueError(f"frame selection {indices[:5]}... is not sorted within [0, {total})")
            try:
                chunks = [transform(chunk) for chunk in reader.read(indices, chunk_size)]
            except FrameCountMismatch as short:
                total = short.decoded  # the container over-counted: choose again from the true count
                continue
            import torch

            frames = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
            if len(frames) != len(indices):
                raise ValueError(f"asked for {len(indices)} frames, got {len(frames)}")
            return DecodedVideo(path, frames, indices, total, reader.fps, reader.name)
        raise ValueError("the frame count changed between two decodes")
    finally:
        reader.close()


_DECORD_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def _one_line(exc: BaseException) -> str:
    """A short one-line reason; decord's ``[time] file.cc:line:`` log prefixes are dropped."""
    text = " ".join(_DECORD_LOG_PREFIX.sub("", str(exc)).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


def is_video_path(path: Path) -> bool:
    """Whether a file name has a video extension (how folders are searched for inputs)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS
