"""`Owlv2Detector`: open-vocabulary boxes for a list of tags on video frames, in original pixel coordinates.

Each frame is sent to `Owlv2ForObjectDetection` with one text query per tag (``"a photo of a {tag}"``). As in
transformers' post-processing, a box's score is the sigmoid of its best query logit and its label that
query; boxes under ``score_threshold`` are dropped, the rest are mapped back through OWLv2's square padding
(`llavidal_object.boxes.owlv2_boxes_to_pixels`) and thinned by per-class NMS
(`llavidal_object.boxes.per_class_nms`, i.e. `torchvision.ops.batched_nms`; ties go to the earlier box).

OWLv2's image processor blurs before it resizes, with a kernel that grows with the shrink factor (a 1080p
frame for a 32-pixel input takes minutes on a CPU). Frames whose longer side is more than twice the
processor's input size are therefore first shrunk (antialiased bilinear, aspect kept) to twice that size;
the processor's own blur then stays small. Box fractions of the padded square do not change with the scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from llavidal_object.boxes import box_area, owlv2_boxes_to_pixels, per_class_nms
from llavidal_object.tracking import Detection

DEFAULT_QUERY_TEMPLATE = "a photo of a {}"


def detections_from_owlv2(logits, pred_boxes, height: int, width: int, labels: Sequence[str], frame_index: int,
                          score_threshold: float = 0.1, nms_iou: float = 0.3) -> list[Detection]:
    """One image's OWLv2 outputs (``(P, Q)`` logits, ``(P, 4)`` normalised cxcywh boxes) → `Detection` list.

    Detections come by descending score, with pixel xyxy boxes in the ``height x width`` frame; boxes left
    with no area after clipping to the frame are dropped before NMS.
    """
    logits = np.asarray(logits, dtype=np.float64)[:, :len(labels)]
    scores = 1.0 / (1.0 + np.exp(-logits.max(axis=1)))
    label_ids = logits.argmax(axis=1)
    boxes = owlv2_boxes_to_pixels(pred_boxes, height, width)
    candidates = np.flatnonzero((scores > score_threshold) & (box_area(boxes) > 0))
    kept = per_class_nms(boxes[candidates], scores[candidates], label_ids[candidates], nms_iou)
    return [Detection(frame_index, tuple(float(v) for v in boxes[candidates[k]]), labels[label_ids[candidates[k]]],
                      float(scores[candidates[k]])) for k in kept]


def shrink_frame(frame: np.ndarray, max_side: int) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` frame scaled down (aspect kept) so its longer side is at most ``max_side``."""
    height, width = frame.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return frame
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    shrunk = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
    return shrunk[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


class Owlv2Detector:
    """Runs an `Owlv2ForObjectDetection` (with its `Owlv2Processor`) on frames, a batch at a time."""

    def __init__(self, model, processor, *, score_threshold: float = 0.1, nms_iou: float = 0.3,
                 query_template: str = DEFAULT_QUERY_TEMPLATE, batch_size: int = 4) -> None:
        self.model = model
        self.processor = processor
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.query_template = query_template
        self.batch_size = batch_size
        size = getattr(processor.image_processor, "size", None) or {}
        self.max_input_side = 2 * max(size.get("height") or 960, size.get("width") or 960)

    @torch.no_grad()
    def detect(self, frames: Sequence[np.ndarray], frame_indices: Sequence[int],
               labels: Sequence[str]) -> dict[int, list[Detection]]:
        """``{frame_index: detections}`` for uint8 ``(H, W, 3)`` frames; no labels → no detections."""
        found: dict[int, list[Detection]] = {int(i): [] for i in frame_indices}
        if not labels:
            return found
        queries = [self.query_template.format(label) for label in labels]
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start:start + self.batch_size])
            shrunk = [shrink_frame(frame, self.max_input_side) for frame in batch]
            inputs = self.processor(images=shrunk, text=[queries] * len(batch), return_tensors="pt", truncation=True)
            inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            outputs = self.model(**inputs)
            logits = outputs.logits.float().cpu().numpy()
            pred_boxes = outputs.pred_boxes.float().cpu().numpy()
            for offset, frame in enumerate(batch):
                frame_index = int(frame_indices[start + offset])
                found[frame_index] = detections_from_owlv2(
                    logits[offset], pred_boxes[offset], frame.shape[0], frame.shape[1], labels, frame_index,
                    self.score_threshold, self.nms_iou)
        return found
