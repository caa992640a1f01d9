"""Box geometry in original pixel coordinates: OWLv2's box mapping, IoU, per-class NMS and crop windows.

Boxes are ``(x1, y1, x2, y2)`` floats in the pixels of the frame as decoded. OWLv2 pads every image at the
bottom and right to a square of side ``max(H, W)`` before resizing it, so its normalised boxes are fractions
of that square, not of the frame: `owlv2_boxes_to_pixels` multiplies both axes by ``max(H, W)`` and then
clips to the frame (a box may reach into the padding).
"""

from __future__ import annotations

import numpy as np


def owlv2_boxes_to_pixels(pred_boxes, height: int, width: int) -> np.ndarray:
    """OWLv2 ``pred_boxes`` (``(N, 4)`` normalised ``cx, cy, w, h`` of the padded square) → ``(N, 4)`` pixel xyxy.

    The result is clipped to ``[0, width] x [0, height]``.
    """
    boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    side = float(max(height, width))
    cx, cy, w, h = boxes.T
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * side
    corners[:, [0, 2]] = corners[:, [0, 2]].clip(0.0, width)
    corners[:, [1, 3]] = corners[:, [1, 3]].clip(0.0, height)
    return corners


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def box_iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of ``(N, 4)`` and ``(M, 4)`` xyxy boxes → ``(N, M)``; empty boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clip(0).prod(axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def per_class_nms(boxes, scores, labels, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression within each label; the kept indices, by descending score.

    Ties in score keep the earlier box. A box overlapping a kept box of the same label by more than
    ``iou_threshold`` is dropped; boxes of different labels never suppress each other.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for index in order:
        same_label = [k for k in kept if labels[k] == labels[index]]
        if same_label and box_iou(boxes[index], boxes[same_label]).max() > iou_threshold:
            continue
        kept.append(index)
    return kept


def square_crop_window(box, height: int, width: int, context: float = 0.1) -> tuple[int, int, int, int]:
    """An integer square window around ``box`` (its longer side plus ``context`` of it), shifted inside the frame.

    Square, so that a CLIP processor's resize + centre crop sees the whole object; never larger than the
    frame's shorter side and never smaller than one pixel.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + context)
    side = int(round(min(max(side, 1.0), height, width)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0.0), width - side)))
    top = int(round(min(max(cy - side / 2, 0.0), height - side)))
    return left, top, left + side, top + side
