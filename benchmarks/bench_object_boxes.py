"""Time the object plugin's box ops before and after the move to torchvision, side by side, in one process.

"Before" is a verbatim copy of the hand-written numpy IoU and Python-loop per-class NMS that
`llavidal_object.boxes` had; "after" is the module as it is now (`torchvision.ops.box_iou` and
`torchvision.ops.batched_nms`, float64 on the CPU). Both run on the same random pixel xyxy boxes (default:
500 boxes of 5 classes in a 1280x720 frame, OWLv2-like sizes), are first checked to give the same kept indices
and IoUs, then alternate; the median wall-clock and CPU time of each is reported with the ratio
before / after (above 1: torchvision is faster). On a shared machine trust the CPU-time ratio.

    python benchmarks/bench_object_boxes.py [--boxes 500] [--classes 5] [--iou 0.3] [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from llavidal_object.boxes import box_iou, per_class_nms


# ---- before: the hand-written implementation, as it was --------------------------------------------------------

def old_box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def old_box_iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of ``(N, 4)`` and ``(M, 4)`` xyxy boxes → ``(N, M)``; empty boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clip(0).prod(axis=2)
    union = old_box_area(a)[:, None] + old_box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def old_per_class_nms(boxes, scores, labels, iou_threshold: float) -> list[int]:
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
        if same_label and old_box_iou(boxes[index], boxes[same_label]).max() > iou_threshold:
            continue
        kept.append(index)
    return kept


# ---- the comparison -----------------------------------------------------------------------------------------------

def random_detections(count: int, classes: int, seed: int = 0):
    """``(count, 4)`` pixel xyxy boxes in a 1280x720 frame, ``(count,)`` scores and ``(count,)`` labels."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 300, (count, 2))
    corner = rng.uniform(0, 1, (count, 2)) * ([1280, 720] - size)
    return np.concatenate([corner, corner + size], axis=1), rng.uniform(size=count), rng.integers(0, classes, count)


def seconds(fn, *args) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(name: str, before, after, args: tuple, repeats: int) -> None:
    before(*args), after(*args)  # warm-up
    timings = {"before": [], "after": []}
    for _ in range(repeats):
        timings["before"].append(seconds(before, *args))
        timings["after"].append(seconds(after, *args))
    b_wall, b_cpu = (statistics.median(t[k] for t in timings["before"]) for k in (0, 1))
    a_wall, a_cpu = (statistics.median(t[k] for t in timings["after"]) for k in (0, 1))
    print(f"{name:<14} {b_cpu * 1e3:>11.3f} {a_cpu * 1e3:>10.3f} {b_cpu / a_cpu:>6.1f}x "
          f"{b_wall * 1e3:>12.3f} {a_wall * 1e3:>11.3f} {b_wall / a_wall:>6.1f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=500)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--iou", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    boxes, scores, labels = random_detections(args.boxes, args.classes)
    kept = per_class_nms(boxes, scores, labels, args.iou)
    if kept != old_per_class_nms(boxes, scores, labels, args.iou):
        raise SystemExit("before and after keep different boxes")
    if not np.array_equal(box_iou(boxes, boxes), old_box_iou(boxes, boxes)):
        raise SystemExit("before and after give different IoUs")
    print(f"{args.boxes} boxes, {args.classes} classes, NMS IoU {args.iou}: {len(kept)} kept (same in both); "
          f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} calls each, milliseconds")
    print(f"{'op':<14} {'before cpu':>11} {'after cpu':>10} {'ratio':>7} {'before wall':>12} {'after wall':>11} "
          f"{'ratio':>7}")
    compare("per_class_nms", old_per_class_nms, per_class_nms, (boxes, scores, labels, args.iou), args.repeats)
    compare("box_iou NxN", old_box_iou, box_iou, (boxes, boxes), args.repeats)


if __name__ == "__main__":
    main()
