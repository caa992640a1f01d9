"""Frames → CLIP pixel values, two ways that give the same numbers.

Both first squash every frame to ``size × size`` with nearest-neighbour sampling (no crop, aspect ratio
not kept), as the original's ``F.interpolate(frames.float(), size=(224, 224))`` does; CLIP's own resize
and centre crop are then no-ops, and what is left is ``(x / 255 - mean) / std`` per channel.

- ``reference``: the original's steps literally: float interpolate, uint8, PIL images, transformers'
  ``CLIPImageProcessorPil`` (the PIL/numpy processor the original ran).
- ``fast``: nearest resize on uint8 tensors (same pixels), then one table lookup per pixel on the target
  device. The 3×256 table holds the processor's own float32 results for every uint8 value, so the output
  is bit-identical to ``reference``, batched and without PIL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

PREPROCESS_MODES = ("fast", "reference")
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class NearestResize:
    """Per-chunk transform for `decode_video`: uint8 ``(t, H, W, 3)`` array → uint8 ``(t, 3, size, size)``.

    ``exact_float=True`` runs the original's float interpolation; the default samples the uint8 pixels
    directly, which picks the same source pixels at a fraction of the memory. Picklable (DataLoader workers).
    """

    def __init__(self, size: int, exact_float: bool = False) -> None:
        self.size = int(size)
        self.exact_float = exact_float

    def __call__(self, chunk: np.ndarray) -> torch.Tensor:
        frames = torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2)
        if frames.shape[-2:] == (self.size, self.size):
            return frames.contiguous()
        if self.exact_float:
            return F.interpolate(frames.float(), size=(self.size, self.size)).to(torch.uint8)
        return F.interpolate(frames.contiguous(), size=(self.size, self.size), mode="nearest")


def clip_normalization_table(mean: Sequence[float] = OPENAI_CLIP_MEAN,
                             std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    """A float32 ``(3, 256)`` table: ``table[c, v]`` is the processor's value for channel ``c`` at uint8 ``v``.

    Computed with the same numpy steps as transformers' PIL processor (rescale in float64, cast to float32,
    then ``(x - mean) / std`` in float32), so looking values up reproduces it to the bit.
    """
    levels = (np.arange(256, dtype=np.uint8).astype(np.float64) * (1 / 255)).astype(np.float32)
    mean32, std32 = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    table = (levels[None, :] - mean32[:, None]) / std32[:, None]
    return torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32))


def normalize_fast(frames: torch.Tensor, table: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``(T, 3, S, S)`` frames → pixel values ``(T, 3, S, S)`` by table lookup, on the frames' device."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected uint8 frames shaped (T, 3, S, S), got {frames.dtype} {tuple(frames.shape)}")
    table = table.to(frames.device)
    offsets = torch.arange(3, device=frames.device).view(1, 3, 1, 1) * 256
    return table.flatten()[frames.long() + offsets].to(dtype)


def reference_image_processor(size: int, mean: Sequence[float] = OPENAI_CLIP_MEAN,
                              std: Sequence[float] = OPENAI_CLIP_STD):
    """transformers' PIL CLIP processor with the original's settings (shortest edge and crop ``size``)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                 image_mean=list(mean), image_std=list(std))


def normalize_reference(frames: torch.Tensor, processor) -> torch.Tensor:
    """uint8 ``(T, 3, S, S)`` frames → float32 pixel values through PIL images and ``processor``."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames.permute(0, 2, 3, 1).cpu().numpy()]
    return processor(images, return_tensors="pt")["pixel_values"]
