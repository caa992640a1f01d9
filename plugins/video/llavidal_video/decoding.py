"""Reading frames out of video files: one small reader interface over decord and PyAV.

`decode_video` is the unit of work: it opens a file, counts its frames, asks a callback which frame indices
to use, fetches those frames in chunks (each chunk optionally shrunk by a ``transform`` at once, so a 1080p
video never sits in memory whole) and returns a `DecodedVideo`. Whatever goes wrong on the way, at open or
at any frame, becomes one `VideoDecodeError` naming the file. With ``decoder="auto"`` decord is tried first
(the original's decoder) and PyAV second, e.g. for AV1, which decord's bundled FFmpeg 4.1 cannot read.

Decoders may disagree on a file's frame count (nasa_13013.mp4: 390 frames in decord, 325 in PyAV); the
decoder that was used is recorded in `DecodedVideo.decoder`.

Damaged and truncated files get one outcome whatever the thread count (the only performance setting that
reaches the decoder): when PyAV's decode of the whole stream fails or yields another frame count than the
header's, the stream is decoded again on one thread, and `check_frame_yield` decides. A stream the decoder
rejects part-way (corrupt or cut-off data) is an error; so is one that ends cleanly with fewer than half of
the frames its header claims. A smaller shortfall is logged as a warning, the frames are chosen from what
decodes, and the header's count stays in `DecodedVideo.claimed_frames`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llavidal_core.errors import LlavidalError
from llavidal_video.sampling import presentation_times

logger = logging.getLogger(__name__)
DECODERS = ("auto", "decord", "pyav")
DEFAULT_CHUNK_SIZE = 16
MIN_DECODABLE_FRACTION = 0.5  # a clean stream that yields fewer of its header's frames than this is an error


class VideoDecodeError(LlavidalError):
    """A video could not be decoded (corrupt, unsupported codec, no frames, not a video)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return type(self), (self.path, self.reason)


class FrameReader(Protocol):
    """An open video: its frame counts and rate, its frames' times, and random access to RGB frames.

    ``claimed_frames`` is what the file's header says; ``num_frames`` what the reader can index. A reader
    whose `read` may raise `StreamMismatch` also has ``survey()`` (see `PyAVReader`).
    """

    name: str
    num_frames: int
    claimed_frames: int
    fps: float

    def timestamps(self) -> np.ndarray | None:
        """Each frame's presentation time in seconds (`presentation_times`), or ``None`` if unknown."""

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
        self.claimed_frames = header_frame_count(path) or self.num_frames
        self.fps = float(self._reader.get_avg_fps() or 0.0)

    def timestamps(self) -> np.ndarray | None:
        starts = self._reader.get_frame_timestamp(list(range(self.num_frames)))[:, 0]
        return presentation_times(starts, self.num_frames, self.fps)

    def read(self, indices: Sequence[int], chunk_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(indices), chunk_size):
            yield self._reader.get_batch(list(indices[start:start + chunk_size])).asnumpy()

    def close(self) -> None:
        self._reader = None


class PyAVReader:
    """PyAV (FFmpeg bundled in its wheel): decodes forward through the whole stream, converting only needed frames.

    The frame count comes from the container (``stream.frames``) or, when it says nothing, from counting
    the stream's packets. `read` raises `StreamMismatch` when the decoder fails or the stream holds another
    number of frames; `survey` then decodes it once on one thread to find out what it really holds.
    """

    name = "pyav"

    def __init__(self, path: str, num_threads: int = 0) -> None:
        import av

        self._path = path
        self._threads = num_threads
        self._frame_times: list[float] | None = None
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            count = stream.frames
            if not count:
                count = sum(1 for packet in container.demux(stream) if packet.size)
        self.num_frames = self.claimed_frames = int(count)

    def timestamps(self) -> np.ndarray | None:
        if self._frame_times is None:
            self._frame_times = self._packet_times()
        return presentation_times(self._frame_times, self.num_frames, self.fps)

    def _packet_times(self) -> list[float]:
        """The stream's packet timestamps in seconds, sorted into display order (packets FFmpeg marks to
        discard, as an edit list does, are left out)."""
        import av

        with av.open(self._path) as container:
            stream = container.streams.video[0]
            base = float(stream.time_base)
            return sorted(float("nan") if packet.pts is None else packet.pts * base
                          for packet in container.demux(stream) if packet.size and not packet.is_discard)

    def read(self, indices: Sequence[int], chunk_size: int) -> Iterator[np.ndarray]:
        import av

        wanted = list(indices)
        chunk: list[np.ndarray] = []
        position = decoded = 0
        with av.open(self._path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self._threads
            try:
                for index, frame in enumerate(container.decode(stream)):
                    decoded = index + 1
                    while position < len(wanted) and wanted[position] == index:
                        chunk.append(frame.to_ndarray(format="rgb24"))
                        position += 1
                        if len(chunk) == chunk_size:
                            yield np.stack(chunk)
                            chunk = []
            except av.error.FFmpegError as exc:
                raise StreamMismatch(f"the decoder failed after {decoded} frames ({_one_line(exc)})") from exc
        if decoded != self.num_frames:
            raise StreamMismatch(f"the stream held {decoded} frames, not {self.num_frames}")
        if chunk:
            yield np.stack(chunk)

    def survey(self) -> None:
        """Decode the whole stream on one thread; from then on `num_frames`, `timestamps` and `read` are
        what it holds. Raises `IncompleteVideo` at the first packet the decoder rejects."""
        import av

        times: list[float] = []
        with av.open(self._path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            try:
                for frame in container.decode(stream):
                    times.append(float("nan") if frame.time is None else frame.time)
            except av.error.FFmpegError as exc:
                raise IncompleteVideo(f"damaged stream: the decoder rejected its data after {len(times)} of the "
                                      f"{self.claimed_frames} frames its header claims ({_one_line(exc)})") from exc
        self.num_frames = len(times)
        self._frame_times = times
        self._threads = 1

    def close(self) -> None:
        pass


class StreamMismatch(Exception):
    """A threaded decode failed or found another frame count than expected (PyAV): survey the stream."""


class IncompleteVideo(Exception):
    """The stream is damaged, or yields too few of the frames its header claims (see `check_frame_yield`)."""


def check_frame_yield(claimed: int, decoded: int) -> None:
    """The rule for a stream that decodes cleanly but holds fewer frames than its header claims.

    Raises `IncompleteVideo` naming both counts when ``decoded`` is 0 or below `MIN_DECODABLE_FRACTION` of
    ``claimed``; a smaller shortfall is accepted (the caller logs it).
    """
    if decoded <= 0:
        raise IncompleteVideo(f"none of the {claimed} frames its header claims can be decoded")
    if decoded < MIN_DECODABLE_FRACTION * claimed:
        raise IncompleteVideo(f"only {decoded} of the {claimed} frames its header claims can be decoded "
                              f"(fewer than {MIN_DECODABLE_FRACTION:.0%})")


def header_frame_count(path: str) -> int | None:
    """The frame count the container's header gives for the first video stream (PyAV), or ``None`` when
    it gives none or cannot be read."""
    import av

    try:
        with av.open(path) as container:
            streams = container.streams.video
            count = int(streams[0].frames) if streams else 0
    except av.error.FFmpegError:
        return None
    return count or None


READERS: dict[str, Callable[..., FrameReader]] = {"decord": DecordReader, "pyav": PyAVReader}


@dataclass
class DecodedVideo:
    """The sampled frames of one video and where they came from."""

    path: str
    frames: Any  # whatever the transform returns (by default a uint8 (T, 3, H, W) torch tensor)
    indices: list[int]
    total_frames: int  # the frames the indices were chosen from: those that decode
    fps: float
    decoder: str
    timestamps: list[float] | None = None  # presentation time of each chosen frame, seconds; None if unknown
    claimed_frames: int | None = None  # the header's frame count (differs from total_frames for a short stream)


def available_decoders() -> list[str]:
    """The decoders importable here, in `decode_video`'s order of preference."""
    import importlib.util

    return [name for name, module in (("decord", "decord"), ("pyav", "av")) if importlib.util.find_spec(module)]


def to_nchw_tensor(chunk: np.ndarray):
    """The default per-chunk transform: uint8 ``(t, H, W, 3)`` array → uint8 ``(t, 3, H, W)`` tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2).contiguous()


def decode_video(path: str | os.PathLike, choose_indices: Callable[..., Sequence[int]], *,
                 decoder: str = "auto", transform: Callable[[np.ndarray], Any] | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, num_threads: int = 0) -> DecodedVideo:
    """Decode the frames ``choose_indices(total_frames, fps)`` of ``path`` as one unit.

    A ``choose_indices`` with a true ``needs_timestamps`` attribute (`llavidal_video.encoder.FrameSelection`
    sampling by fps) is also given ``timestamps=``: each frame's presentation time in seconds,
    ``(total_frames,)`` float64, or ``None`` when unknown. ``transform`` maps each uint8 ``(t, H, W, 3)``
    chunk to a tensor (default `to_nchw_tensor`); the chunks are concatenated along the first axis.
    ``num_threads`` (0: FFmpeg's choice) changes the speed, never the outcome.

    Raises `VideoDecodeError` (naming the file and every decoder's reason) when no decoder can decode the
    whole selection, including when the stream is damaged or holds too few of its header's frames
    (`check_frame_yield`).
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
        if reader.claimed_frames <= 0:
            raise ValueError("the video has no frames")
        try:
            return _decode_checked(reader, path, choose_indices, transform, chunk_size)
        except StreamMismatch as mismatch:
            logger.debug("%s: %s; decoding it again on one thread", path, mismatch)
        reader.survey()
        try:
            return _decode_checked(reader, path, choose_indices, transform, chunk_size)
        except StreamMismatch as mismatch:
            raise ValueError(f"two single-threaded decodes disagree: {mismatch}") from mismatch
    finally:
        reader.close()


def _decode_checked(reader: FrameReader, path: str, choose_indices, transform, chunk_size: int) -> DecodedVideo:
    """`check_frame_yield` on the frames the reader can reach, then the selection."""
    check_frame_yield(reader.claimed_frames, reader.num_frames)
    if reader.num_frames < reader.claimed_frames:
        logger.warning("%s: only %d of the %d frames its header claims can be decoded; sampling from those",
                       path, reader.num_frames, reader.claimed_frames)
    return _decode_selection(reader, path, choose_indices, transform, chunk_size)


def _decode_selection(reader: FrameReader, path: str, choose_indices, transform, chunk_size: int) -> DecodedVideo:
    total = reader.num_frames
    times = reader.timestamps()
    if getattr(choose_indices, "needs_timestamps", False):
        indices = [int(i) for i in choose_indices(total, reader.fps, timestamps=times)]
    else:
        indices = [int(i) for i in choose_indices(total, reader.fps)]
    if not indices or any(not 0 <= i < total for i in indices) or indices != sorted(indices):
        raise ValueError(f"frame selection {indices[:5]}... is not sorted within [0, {total})")
    chunks = [transform(chunk) for chunk in reader.read(indices, chunk_size)]
    import torch

    frames = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    if len(frames) != len(indices):
        raise ValueError(f"asked for {len(indices)} frames, got {len(frames)}")
    chosen_times = None if times is None else [round(float(times[i]), 6) for i in indices]
    return DecodedVideo(path, frames, indices, total, reader.fps, reader.name, chosen_times,
                        reader.claimed_frames)


_DECORD_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def _one_line(exc: BaseException) -> str:
    """A short one-line reason; decord's ``[time] file.cc:line:`` log prefixes are dropped."""
    text = " ".join(_DECORD_LOG_PREFIX.sub("", str(exc)).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text
