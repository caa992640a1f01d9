"""`VideoCueEncoder`: video files → the ``video`` cue's feature rows (a llavidal `CueEncoder`).

One encoder = a CLIP vision tower cut at the feature layer + frame sampling + preprocessing + pooling.
``VideoCueEncoder.from_pretrained`` accepts a CLIP (transformers folder or Hub id, or ``open_clip:<name>``)
or a folder written by ``save_pretrained``; ``encode(paths)`` returns one ``(rows, dim)`` tensor per video.
In the two phases of a `CueEncoder`: ``prepare(path)`` decodes and squashes the sampled frames (a
`DecodedVideo`, in DataLoader workers during extraction) and ``forward(videos)`` runs the frames of all the
videos of a batch through the tower together, in chunks of ``frame_batch_size``, then pools each video.
The default options reproduce the original LLAVIDAL / Video-ChatGPT extraction (100 segment-midpoint
frames, layer -2 without CLS, ``videochatgpt`` pooling); ``preprocess="reference"`` also reproduces its
decoder (decord), PIL preprocessing and float16 rounding before the means, to the bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llavidal_core.encoder import CueEncoder, EncodedFeatures
from llavidal_core.encoder_records import EncoderRecord
from llavidal_core.video_ids import VIDEO_EXTENSIONS
from llavidal_core.seed_cues import VIDEO
from llavidal_video import __version__
from llavidal_video.decoding import DECODERS, DEFAULT_CHUNK_SIZE, DecodedVideo, decode_video
from llavidal_video.pooling import POOL_MODES, pool_features, pooled_rows, videochatgpt_pool_reference
from llavidal_video.preprocessing import (
    PREPROCESS_MODES, NearestResize, clip_normalization_table, normalize_fast, normalize_reference,
    reference_image_processor,
)
from llavidal_video.sampling import SAMPLING_MODES, sample_frame_indices
from llavidal_video.towers import OPEN_CLIP_PREFIX, VisionTower, build_vision_tower, load_vision_tower

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class FrameSelection:
    """Which frames to take (picklable, for DataLoader workers): see `llavidal_video.sampling`."""

    num_frames: int = 100
    mode: str = "segments"
    fps: float = 1.0

    @property
    def needs_timestamps(self) -> bool:
        """Whether `decode_video` must pass the frames' presentation times (sampling by fps does)."""
        return self.mode == "fps"

    def __call__(self, total_frames: int, video_fps: float, timestamps=None) -> list[int]:
        return sample_frame_indices(total_frames, self.num_frames, self.mode, video_fps=video_fps,
                                    target_fps=self.fps, timestamps=timestamps)


@dataclass(frozen=True)
class VideoFrameSource:
    """Path → `DecodedVideo` of the selected frames, squashed to the tower's size (picklable)."""

    selection: FrameSelection
    image_size: int
    decoder: str = "auto"
    exact_float_resize: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    num_threads: int = 0

    def __call__(self, path: str | os.PathLike) -> DecodedVideo:
        return decode_video(path, self.selection, decoder=self.decoder,
                            transform=NearestResize(self.image_size, self.exact_float_resize),
                            chunk_size=self.chunk_size, num_threads=self.num_threads)


class VideoCueEncoder(CueEncoder):
    """CLIP features of sampled video frames, pooled into the ``video`` cue's rows.

    Args (all saved in ``config.json`` by ``save_pretrained``):
        tower: the tower's structure (`VisionTower.describe`); weights come from ``vision_tower`` or a
            checkpoint. Use `from_pretrained` rather than passing it by hand.
        num_frames: frames sampled per video (fewer if the video is shorter).
        sampling: ``segments`` (the original's midpoints) or ``uniform``, both over frame indices, or ``fps``
            (the frames nearest to ``sampling_fps`` target times per second, by presentation time).
        pool: ``videochatgpt`` (num_frames + patches rows), ``none`` (every patch of every frame) or
            ``spatial`` (per-frame grid average-pooled with ``pool_stride``).
        preprocess: ``fast`` (uint8 tensors, batched, on the encoder's device) or ``reference`` (decord,
            PIL, transformers' processor and float16 rounding before the means, as the original).
        decoder: ``auto`` (decord, then PyAV), ``decord`` or ``pyav``; ``reference`` always uses decord.
        frame_batch_size: frames per tower forward pass.
        source: where the tower's weights came from (recorded with the features).
    """

    reads_video_files = True
    input_suffixes = tuple(sorted(VIDEO_EXTENSIONS))
    tower_name: tuple[str, int, str | None] | None = None  # (CLIP, layer, open_clip tag) when built from a CLIP

    def __init__(self, tower: dict[str, Any], *, num_frames: int = 100, sampling: str = "segments",
                 sampling_fps: float = 1.0, pool: str = "videochatgpt", pool_stride: int = 2,
                 preprocess: str = "fast", decoder: str = "auto", frame_batch_size: int = 48,
                 decode_threads: int = 0, source: str | None = None, vision_tower: VisionTower | None = None):
        super().__init__()
        _check_choice("sampling", sampling, SAMPLING_MODES)
        _check_choice("pool", pool, POOL_MODES)
        _check_choice("preprocess", preprocess, PREPROCESS_MODES)
        _check_choice("decoder", decoder, DECODERS)
        if preprocess == "reference" and decoder == "pyav":
            raise ValueError("preprocess='reference' decodes with decord, as the original; do not ask for pyav")
        if num_frames <= 0 or frame_batch_size <= 0 or pool_stride <= 0:
            raise ValueError("num_frames, frame_batch_size and pool_stride must be positive")
        self.tower = vision_tower if vision_tower is not None else build_vision_tower(tower)
        self.num_frames = num_frames
        self.sampling = sampling
        self.sampling_fps = sampling_fps
        self.pool = pool
        self.pool_stride = pool_stride
        self.preprocess = preprocess
        self.decoder = "decord" if preprocess == "reference" else decoder
        self.frame_batch_size = frame_batch_size
        self.decode_threads = decode_threads
        self.source = source
        self.register_buffer("normalization_table",
                             clip_normalization_table(self.tower.image_mean, self.tower.image_std), persistent=False)
        self._reference_processor = None
        self._spec = dataclasses.replace(
            VIDEO,
            feature_dim=self.tower.hidden_size,
            num_tokens=pooled_rows(pool, num_frames, self.tower.num_patches, pool_stride),
            version=__version__,
            description=f"{pool} pooling of CLIP layer {self.tower.layer} patch features of {num_frames} frames",
        )

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, layer: int = -2,
                        pretrained: str | None = None, dtype: torch.dtype | str | None = None,
                        **options: Any) -> "VideoCueEncoder":
        """Build from a CLIP (transformers folder or Hub id; ``open_clip:<name>`` with ``pretrained``) or load
        a ``save_pretrained`` folder. ``options`` are the ``__init__`` options (num_frames, pool, ...)."""
        name = str(pretrained_model_name_or_path)
        dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
        if name.startswith(OPEN_CLIP_PREFIX) or not _is_saved_encoder(name):
            tower = load_vision_tower(name, layer=layer, pretrained=pretrained, dtype=dtype)
            source = name if pretrained is None else f"{name}@{pretrained}"
            encoder = cls(tower.describe(), vision_tower=tower, source=source, **options).eval()
            encoder.tower_name = (name, layer, pretrained)
            return encoder
        encoder = super().from_pretrained(name, strict=True, **options)
        return encoder.to(dtype).eval() if dtype is not None else encoder.eval()

    # -- the cue --------------------------------------------------------------------------------------

    @property
    def spec(self):
        return self._spec

    def frame_source(self, num_threads: int | None = None) -> VideoFrameSource:
        """The picklable path → frames step of `encode`, for running decoding elsewhere (DataLoader workers)."""
        return VideoFrameSource(
            FrameSelection(self.num_frames, self.sampling, self.sampling_fps), self.tower.image_size,
            decoder=self.decoder, exact_float_resize=self.preprocess == "reference",
            num_threads=self.decode_threads if num_threads is None else num_threads,
        )

    def prepare(self, raw: str | os.PathLike | DecodedVideo) -> DecodedVideo:
        """Decode a video file's sampled frames, squashed to the tower's input size (CPU).

        Raises `llavidal_video.decoding.VideoDecodeError` naming the file when it cannot be decoded.
        """
        return raw if isinstance(raw, DecodedVideo) else self.frame_source()(raw)

    def preparer(self, in_worker: bool = False) -> VideoFrameSource:
        """The picklable path → `DecodedVideo` step (no weights); one decoding thread in a worker process."""
        return self.frame_source(num_threads=1 if in_worker else None)

    def forward(self, videos: Sequence[DecodedVideo]) -> list[EncodedFeatures]:
        """Decoded videos → one ``(rows, dim)`` tensor each, with the frames used as metadata.

        The frames of all the videos go through the tower together, ``frame_batch_size`` at a time (a chunk
        may span two videos), then each video's hidden states are pooled on their own.
        """
        if self.preprocess == "reference":
            features = [self._encode_reference(self._checked_frames(video.frames)) for video in videos]
        else:
            frames = [self._checked_frames(video.frames) for video in videos]
            hidden = self._hidden_states(torch.cat(frames) if len(frames) > 1 else frames[0])
            features = [pool_features(part, self.pool, self.num_frames, self.pool_stride).to(self.dtype)
                        for part in hidden.split([len(f) for f in frames])]
        return [EncodedFeatures(rows, _frames_metadata(video)) for rows, video in zip(features, videos)]

    @torch.inference_mode()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, 3, S, S)`` frames (already squashed to the tower's size) → ``(rows, dim)`` features."""
        frames = self._checked_frames(frames)
        if self.preprocess == "reference":
            return self._encode_reference(frames)
        return pool_features(self._hidden_states(frames), self.pool, self.num_frames, self.pool_stride).to(self.dtype)

    def _checked_frames(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.tower.image_size
        if frames.dtype != torch.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != (3, size, size):
            raise ValueError(f"expected uint8 frames shaped (T, 3, {size}, {size}), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        if not 0 < len(frames) <= self.num_frames:
            raise ValueError(f"expected 1 to {self.num_frames} frames, got {len(frames)}")
        return frames

    def _hidden_states(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames of one or more videos → the tower's ``(T, patches, dim)`` features (fast preprocessing)."""
        frames = frames.to(self.device, non_blocking=True)
        return torch.cat([self.tower(normalize_fast(chunk, self.normalization_table, self.dtype))
                          for chunk in frames.split(self.frame_batch_size)])

    def _encode_reference(self, frames: torch.Tensor) -> torch.Tensor:
        if self._reference_processor is None:
            self._reference_processor = reference_image_processor(self.tower.image_size, self.tower.image_mean,
                                                                  self.tower.image_std)
        pixels = normalize_reference(frames, self._reference_processor)
        hidden = torch.cat([self.tower(chunk.to(self.device, self.dtype)).float().cpu()
                            for chunk in pixels.split(self.frame_batch_size)])
        if self.pool == "videochatgpt":  # the original rounds to float16 before taking the means, in numpy
            pooled = videochatgpt_pool_reference(hidden.numpy().astype(np.float16), self.num_frames)
            return torch.from_numpy(pooled)
        return pool_features(hidden, self.pool, self.num_frames, self.pool_stride).to(self.dtype)

    def encoder_record(self) -> EncoderRecord | None:
        """Built from a CLIP: that CLIP, its layer and every option that shapes the features (frames, sampling,
        pooling, preprocessing, decoder); loaded from a saved encoder folder: that folder. Plus the dtype."""
        dtype = str(self.dtype).removeprefix("torch.")
        if self.tower_name is None:
            return super().encoder_record()
        name, layer, pretrained = self.tower_name
        options = {"layer": layer, "num_frames": self.num_frames, "sampling": self.sampling,
                   "sampling_fps": self.sampling_fps, "pool": self.pool, "pool_stride": self.pool_stride,
                   "preprocess": self.preprocess, "decoder": self.decoder}
        if pretrained is not None:
            options["pretrained"] = pretrained
        return EncoderRecord(pretrained=name, options=options, dtype=dtype)

    def feature_metadata(self) -> dict[str, str]:
        """The spec and record (`CueEncoder.feature_metadata`) and the settings that shaped the features."""
        return {
            "encoder": self.source or "", "layer": str(self.tower.layer), "num_frames": str(self.num_frames),
            "sampling": self.sampling, "pool": self.pool, "preprocess": self.preprocess,
            "compute_dtype": str(self.dtype).removeprefix("torch."), **super().feature_metadata(),
            **({"sampling_fps": str(self.sampling_fps)} if self.sampling == "fps" else {}),
            **({"pool_stride": str(self.pool_stride)} if self.pool == "spatial" else {}),
        }


def _frames_metadata(video: DecodedVideo) -> dict[str, str]:
    """Which frames of the video were encoded, and how they were decoded (stored with its features)."""
    return {"decoder": video.decoder, "frames": str(len(video.indices)), "total_frames": str(video.total_frames),
            "claimed_frames": str(video.claimed_frames), "frame_indices": json.dumps(video.indices),
            "frame_times": json.dumps(video.timestamps)}


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _is_saved_encoder(name: str) -> bool:
    """Whether ``name`` (a folder or Hub id) was written by `VideoCueEncoder.save_pretrained`: its
    ``config.json`` describes a tower. Anything else is handed to the CLIP loaders, which report errors."""
    if Path(name).is_dir():
        config = Path(name) / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        try:
            config = Path(hf_hub_download(name, "config.json"))
        except Exception:  # noqa: BLE001 - not a Hub repo we can read: let the CLIP loader say why
            return False
    try:
        return "tower" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False
