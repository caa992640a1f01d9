"""Box geometry in original pixel coordinates: OWLv2's box mapping, IoU, per-class NMS and crop windows.

Boxes are ``(x1, y1, x2, y2)`` floats in the pixels of the frame as decoded. OWLv2 pads every image at the
bottom and right to a square of side ``max(H, W)`` before resizing it, so its normalised boxes are fractions
of that square, not of the frame: `owlv2_boxes_to_pixels` multiplies both axes by ``max(H, W)`` and then
clips to the frame (a box may reach into the padding).

IoU and NMS are torchvision's (`torchvision.ops.box_iou`, `torchvision.ops.batched_nms`), run in float64 on
the CPU, with three guards that keep this module's documented behaviour where torchvision's differs:

- ``torchvision.ops.box_iou`` gives NaN (0 / 0) for two empty boxes and may give ``-0.0`` for an inverted
  one; `box_iou` turns both into ``0.0`` ("empty boxes give 0").
- Tied scores: torchvision does not promise which tied box wins, and above 1000 boxes on the CPU it orders
  the kept boxes with an unstable sort. `per_class_nms` hands it distinct ranks (by score, then index)
  instead of the raw scores, so a tie always goes to the earlier box.
- ``batched_nms`` separates the classes by shifting each class's boxes by ``label x (max coordinate + 1)``,
  which lets classes overlap when a coordinate is below -1. `per_class_nms` first translates such boxes
  so that the smallest coordinate is 0 (IoU does not change under translation).
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision


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
    """Areas (square pixels, float64 ``(N,)``) of ``(N, 4)`` xyxy boxes; an inverted side counts as 0.

    Unlike `torchvision.ops.box_area`, which multiplies the signed sides.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` pixel xyxy boxes → float64 ``(N, M)``; empty boxes give 0.

    A single box may be given as a flat ``(4,)`` sequence. Computed by `torchvision.ops.box_iou` in float64;
    its NaN (two empty boxes) and ``-0.0`` (an inverted box) come back as ``0.0``.
    """
    a = torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(b, dtype=np.float64).reshape(-1, 4))
    iou = torchvision.ops.box_iou(a, b).numpy()
    return np.nan_to_num(iou, nan=0.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def per_class_nms(boxes, scores, labels, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression within each label; the kept indices, by descending score.

    Args:
        boxes: ``(N, 4)`` pixel xyxy boxes.
        scores: ``(N,)`` scores; ties keep the earlier box (and list it first). NaN scores rank last.
        labels: ``(N,)`` labels of any comparable kind (ints, strings); boxes of different labels never
            suppress each other.
        iou_threshold: a box whose IoU with a kept, higher-ranked box of its label is strictly greater than
            this is dropped (an IoU exactly at the threshold is kept). Empty boxes never suppress nor are
            suppressed for a threshold >= 0.

    Returns:
        The kept indices into ``boxes`` (python ints), best score first. Computed by
        `torchvision.ops.batched_nms` in float64; its per-class coordinate offsets round non-integer
        coordinates, which can move an IoU lying within float64 rounding of the threshold to the other side.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"need as many boxes, scores and labels, got {len(boxes)}, {len(scores)}, {len(labels)}")
    if len(boxes) == 0:
        return []
    order = np.argsort(-scores, kind="stable")  # by descending score, ties by index; NaN last
    ranks = torch.arange(len(order), 0, -1, dtype=torch.float64)  # distinct scores in that order
    _, label_ids = np.unique(labels[order], return_inverse=True)
    ordered = boxes[order]
    lowest = ordered.min()
    if lowest < 0:
        ordered = ordered - lowest
    keep = torchvision.ops.batched_nms(torch.as_tensor(ordered), ranks,
                                       torch.as_tensor(label_ids.reshape(-1), dtype=torch.int64),
                                       float(iou_threshold))
    return order[keep.numpy()].tolist()


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
