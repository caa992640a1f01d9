"""Patch tokens of T frames ``(T, P, D)`` → the cue's feature rows.

- ``videochatgpt``: the original's ``num_temporal + P`` rows. Rows ``[:num_temporal]`` are per-frame means
  over the P patches (zero rows after the last frame when T < num_temporal); rows ``[num_temporal:]`` are
  per-patch means over the frames. (The original calls the first block "temporal" and comments it as a
  mean over time; it is a mean over patches. This follows the code, not the comment.)
  `videochatgpt_pool_reference` is the original's numpy code on a float16 array, bit for bit;
  `videochatgpt_pool` is the same in torch, in float32, on any device.
- ``none``: every patch token of every frame, ``(T·P, D)``, frames zero-padded to ``num_frames``.
- ``spatial``: LLaVA-NeXT-style: each frame's patch grid average-pooled with ``stride``, ``(T·P/stride², D)``,
  frames zero-padded to ``num_frames``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

POOL_MODES = ("videochatgpt", "none", "spatial")


def pooled_rows(pool: str, num_frames: int, num_patches: int, stride: int = 2) -> int:
    """How many rows `pool_features` returns for ``num_frames`` sampled frames of ``num_patches`` patches."""
    if pool == "videochatgpt":
        return num_frames + num_patches
    if pool == "none":
        return num_frames * num_patches
    if pool == "spatial":
        side = _grid_side(num_patches)
        return num_frames * math.ceil(side / stride) ** 2
    raise ValueError(f"unknown pooling {pool!r}; choose one of {', '.join(POOL_MODES)}")


def videochatgpt_pool_reference(features: np.ndarray, num_temporal_tokens: int = 100) -> np.ndarray:
    """The original ``get_spatio_temporal_features``, verbatim in effect (numpy, dtype of ``features``)."""
    t = features.shape[0]
    temporal_tokens = np.mean(features, axis=1)
    padding_size = num_temporal_tokens - t
    if padding_size > 0:
        temporal_tokens = np.pad(temporal_tokens, ((0, padding_size), (0, 0)), mode="constant")
    spatial_tokens = np.mean(features, axis=0)
    return np.concatenate([temporal_tokens, spatial_tokens], axis=0)


def videochatgpt_pool(features: torch.Tensor, num_temporal_tokens: int = 100) -> torch.Tensor:
    """`videochatgpt_pool_reference` in torch; means are taken in float32 whatever the input dtype."""
    _check_frames(features, num_temporal_tokens)
    features = features.float()
    temporal = features.mean(dim=1)
    temporal = F.pad(temporal, (0, 0, 0, num_temporal_tokens - temporal.shape[0]))
    return torch.cat([temporal, features.mean(dim=0)])


def spatial_pool(features: torch.Tensor, num_frames: int, stride: int) -> torch.Tensor:
    """Average-pool each frame's square patch grid with ``stride`` (ceil mode), frames padded to ``num_frames``."""
    _check_frames(features, num_frames)
    t, p, d = features.shape
    side = _grid_side(p)
    grid = features.float().transpose(1, 2).reshape(t, d, side, side)
    pooled = F.avg_pool2d(grid, kernel_size=stride, stride=stride, ceil_mode=True)
    rows = pooled.flatten(2).transpose(1, 2)  # (t, p', d)
    return F.pad(rows, (0, 0, 0, 0, 0, num_frames - t)).reshape(-1, d)


def all_patches(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Every patch token, frame after frame, frames zero-padded to ``num_frames``."""
    _check_frames(features, num_frames)
    return F.pad(features.float(), (0, 0, 0, 0, 0, num_frames - features.shape[0])).flatten(0, 1)


def pool_features(features: torch.Tensor, pool: str, num_frames: int, stride: int = 2) -> torch.Tensor:
    """Dispatch on ``pool`` (one of `POOL_MODES`); ``features`` is ``(T, P, D)`` with ``T <= num_frames``."""
    if pool == "videochatgpt":
        return videochatgpt_pool(features, num_frames)
    if pool == "none":
        return all_patches(features, num_frames)
    if pool == "spatial":
        return spatial_pool(features, num_frames, stride)
    raise ValueError(f"unknown pooling {pool!r}; choose one of {', '.join(POOL_MODES)}")


def _check_frames(features: torch.Tensor, num_frames: int) -> None:
    if features.ndim != 3 or not 0 < features.shape[0] <= num_frames:
        raise ValueError(f"expected (T, patches, dim) features with 0 < T <= {num_frames}, "
                         f"got shape {tuple(features.shape)}")


def _grid_side(num_patches: int) -> int:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"spatial pooling needs a square patch grid, got {num_patches} patches")
    return side
