"""`ClipCropEncoder`: CLIP image-tower embeddings of object crops (512-d for ViT-B/16).

The crop is a square window around the box (`llavidal_object.boxes.square_crop_window`), so the processor's
resize and centre crop keep the whole object. The feature is the tower's projected image embedding
(`CLIPVisionModelWithProjection.image_embeds`), the CLIP space LLAVIDAL's object features live in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llavidal_object.boxes import square_crop_window
from llavidal_object.tracking import Detection


class ClipCropEncoder:
    """Embeds image crops with a `CLIPVisionModelWithProjection` and its image processor."""

    def __init__(self, model, processor, *, context: float = 0.1, batch_size: int = 32) -> None:
        self.model = model
        self.image_processor = getattr(processor, "image_processor", processor)
        self.context = context
        self.batch_size = batch_size

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def crop(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The square window around ``box`` cut out of a uint8 ``(H, W, 3)`` frame."""
        left, top, right, bottom = square_crop_window(box, frame.shape[0], frame.shape[1], self.context)
        return frame[top:bottom, left:right]

    @torch.no_grad()
    def encode(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """``(N, feature_dim)`` float32 CPU embeddings of N uint8 crops (``(0, D)`` for none)."""
        rows = [torch.empty(0, self.feature_dim)]
        for start in range(0, len(crops), self.batch_size):
            batch = list(crops[start:start + self.batch_size])
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.model.device, self.model.dtype)
            rows.append(self.model(pixel_values=pixels).image_embeds.float().cpu())
        return torch.cat(rows)

    def encode_points(self, frames: np.ndarray, frame_position: dict[int, int],
                      points: Sequence[Detection]) -> torch.Tensor:
        """Embeddings of the crops at ``points``; ``frame_position`` maps a frame index to its row in ``frames``."""
        return self.encode([self.crop(frames[frame_position[p.frame_index]], p.box) for p in points])
