"""Reading the frames the object cue works on, through llavidal-video's decoders.

`read_video_frames` samples ``num_frames`` frames evenly from the first to the last (llavidal-video's
``uniform`` sampling) and returns them as one uint8 ``(T, H, W, 3)`` array at the video's own resolution,
because boxes and crops are in original pixels. Decoding failures are llavidal-video's `VideoDecodeError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from llavidal_video.decoding import decode_video
from llavidal_video.sampling import uniform_indices


@dataclass
class VideoFrames:
    """Sampled frames of one video: ``frames[i]`` is frame number ``indices[i]`` of ``total_frames``."""

    path: str
    frames: np.ndarray  # uint8 (T, H, W, 3)
    indices: list[int]
    total_frames: int
    decoder: str


def _as_hwc_tensor(chunk: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(chunk))


def read_video_frames(path: str | os.PathLike, num_frames: int, decoder: str = "auto") -> VideoFrames:
    """``num_frames`` frames of ``path`` spread evenly over it (all of them if it is shorter)."""
    decoded = decode_video(path, lambda total, _fps: uniform_indices(total, num_frames), decoder=decoder,
                           transform=_as_hwc_tensor)
    return VideoFrames(decoded.path, decoded.frames.numpy(), decoded.indices, decoded.total_frames, decoded.decoder)
