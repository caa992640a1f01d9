"""Box geometry: OWLv2's square padding mapped back to original pixels, IoU, per-class NMS, crop windows.

IoU and NMS are torchvision's; the tests at the end pin the corner cases where torchvision's own answer differs
from ours (empty boxes, tied scores, negative coordinates) and compare both against a brute-force reference.
"""

import numpy as np
import pytest
import torch
import torchvision

from llavidal_object.boxes import box_iou, owlv2_boxes_to_pixels, per_class_nms, square_crop_window


def test_wide_frame_boxes_scale_by_the_padded_square_side():
    # a 60x100 frame is padded at the bottom to 100x100: normalised y is a fraction of 100, not of 60
    boxes = owlv2_boxes_to_pixels([[0.5, 0.3, 0.2, 0.2], [0.5, 0.55, 0.2, 0.2], [0.1, 0.8, 0.1, 0.1]],
                                  height=60, width=100)
    np.testing.assert_allclose(boxes, [[40, 20, 60, 40], [40, 45, 60, 60], [5, 60, 15, 60]])


def test_tall_frame_boxes_clip_to_the_width():
    boxes = owlv2_boxes_to_pixels([[0.45, 0.5, 0.2, 0.4]], height=100, width=50)
    np.testing.assert_allclose(boxes, [[35, 30, 50, 70]])


def test_square_frame_is_a_plain_scale():
    np.testing.assert_allclose(owlv2_boxes_to_pixels([[0.5, 0.5, 1.0, 1.0]], 32, 32), [[0, 0, 32, 32]])


def test_iou():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0, 0.0]])


def test_nms_is_per_class_and_keeps_the_best_score():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]]
    kept = per_class_nms(boxes, scores=[0.5, 0.9, 0.4, 0.3], labels=[0, 0, 1, 0], iou_threshold=0.3)
    assert kept == [1, 2, 3]
    assert per_class_nms(np.zeros((0, 4)), [], [], 0.3) == []


def test_an_iou_exactly_at_the_threshold_is_kept():
    # IoU([0,0,10,10], [0,0,10,5]) is exactly 0.5; like torchvision, only IoU > threshold suppresses
    boxes = [[0, 0, 10, 10], [0, 0, 10, 5]]
    assert box_iou(boxes[0], boxes[1])[0, 0] == 0.5
    assert per_class_nms(boxes, [0.9, 0.8], [0, 0], iou_threshold=0.5) == [0, 1]
    assert per_class_nms(boxes, [0.9, 0.8], [0, 0], iou_threshold=0.49) == [0]
    assert torchvision.ops.nms(torch.tensor(boxes, dtype=torch.float64), torch.tensor([0.9, 0.8], dtype=torch.float64),
                               0.5).tolist() == [0, 1]


def test_tied_scores_go_to_the_earlier_box():
    boxes = [[50, 50, 60, 60], [0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]]
    assert per_class_nms(boxes, [0.5, 0.5, 0.5, 0.5], [0, 1, 1, 0], iou_threshold=0.3) == [0, 1, 3]
    assert per_class_nms(boxes, [0.5, 0.5, 0.7, 0.5], [0, 1, 1, 0], iou_threshold=0.3) == [2, 0, 3]


def test_tied_scores_keep_index_order_beyond_torchvisions_vanilla_path():
    # above 1000 boxes torchvision's CPU batched_nms runs per class and merges the classes with an unstable
    # sort, so tied kept boxes of different labels may come in any order; per_class_nms hands it ranks instead
    n = 1500
    boxes = np.concatenate([np.arange(n)[:, None] * 20.0 + [0, 0], np.arange(n)[:, None] * 20.0 + [10, 10]], axis=1)
    labels = np.arange(n) % 5
    assert per_class_nms(boxes, np.zeros(n), labels, 0.3) == list(range(n))
    assert per_class_nms(boxes, np.arange(n) // 100, labels, 0.3) == sorted(range(n), key=lambda i: (-(i // 100), i))


def test_empty_and_inverted_boxes_have_zero_iou_where_torchvision_gives_nan():
    point, inverted, box = [3, 3, 3, 3], [10, 0, 0, 10], [0, 0, 10, 10]
    raw = torchvision.ops.box_iou(torch.tensor([point, inverted], dtype=torch.float64),
                                  torch.tensor([point, box], dtype=torch.float64))
    # torchvision multiplies the signed sides: the inverted box has area -100, so its unions are -100 and 0
    assert raw[0, 0].isnan() and raw[1, 1].isnan() and raw[1, 0] == 0 and raw[1, 0].signbit()
    iou = box_iou([point, inverted], [point, box])
    np.testing.assert_array_equal(iou, np.zeros((2, 2)))
    assert not np.signbit(iou).any()
    # so empty boxes neither suppress nor get suppressed, even at threshold 0
    assert per_class_nms([point, point, box, inverted], [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0], 0.0) == [0, 1, 2, 3]


def test_negative_coordinates_do_not_mix_the_classes():
    # batched_nms offsets each class by label x (max coordinate + 1): with coordinates below -1 the shifted
    # class-1 box lands on the class-0 box and torchvision suppresses across classes
    boxes, scores, labels = [[-20, -20, -10, -10], [-18, -18, -8, -8], [0, 0, 1, 1]], [0.9, 0.8, 0.1], [1, 0, 0]
    raw = torchvision.ops.batched_nms(torch.tensor(boxes, dtype=torch.float64),
                                      torch.tensor(scores, dtype=torch.float64), torch.tensor(labels), 0.3)
    assert raw.tolist() == [0, 2]
    assert per_class_nms(boxes, scores, labels, 0.3) == [0, 1, 2]
    assert per_class_nms(boxes, scores, [0, 0, 0], 0.3) == [0, 2]


def test_labels_may_be_strings_and_lengths_must_match():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]]
    assert per_class_nms(boxes, [0.5, 0.9, 0.4], ["cup", "cup", "phone"], 0.3) == [1, 2]
    with pytest.raises(ValueError, match="as many boxes"):
        per_class_nms(boxes, [0.5, 0.9], ["cup", "cup", "phone"], 0.3)


def reference_iou(a, b) -> float:
    """IoU of two xyxy boxes, written out; inverted sides count as 0 and an empty union gives 0."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, labels, iou_threshold) -> list[int]:
    """Greedy per-label NMS by descending score, ties to the earlier box: the definition, pair by pair."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: (-scores[i], i)):
        if all(labels[k] != labels[i] or reference_iou(boxes[k], boxes[i]) <= iou_threshold for k in kept):
            kept.append(i)
    return kept


def random_boxes(rng, n: int, integer: bool) -> np.ndarray:
    """``(n, 4)`` xyxy boxes: float ones in a 160-pixel square, or integer ones on a 24-pixel grid (where many
    IoUs are simple fractions such as 1/3 or 1/2, exactly at a threshold)."""
    if integer:
        corner = rng.integers(0, 16, (n, 2)).astype(float)
        return np.concatenate([corner, corner + rng.integers(1, 9, (n, 2))], axis=1)
    corner = rng.uniform(0, 100, (n, 2))
    return np.concatenate([corner, corner + rng.uniform(5, 60, (n, 2))], axis=1)


def test_iou_matches_the_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 60, integer=False), random_boxes(rng, 40, integer=True)
    a[:5, 2:] = a[:5, :2]          # empty boxes
    b[:5, [0, 2]] = b[:5, [2, 0]]  # inverted boxes
    expected = [[reference_iou(x, y) for y in b] for x in a]
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=1e-12, atol=0)
    assert 0 < (np.asarray(expected) > 0).mean() < 1


@pytest.mark.parametrize("seed, integer, threshold", [
    (0, False, 0.3), (1, False, 0.5), (2, False, 0.0), (3, True, 0.3), (4, True, 0.5), (5, True, 1 / 3)])
def test_nms_matches_the_brute_force_reference_on_random_boxes(seed, integer, threshold):
    # 200 boxes in 5 classes; integer boxes with scores in tenths also give tied scores and IoUs exactly at
    # the threshold
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 200, integer)
    scores = np.round(rng.uniform(size=200), 1) if integer else rng.uniform(size=200)
    labels = rng.integers(0, 5, size=200)
    expected = reference_nms(boxes.tolist(), scores.tolist(), labels.tolist(), threshold)
    assert per_class_nms(boxes, scores, labels, threshold) == expected
    # not a vacuous comparison: NMS removes boxes, and which ones depends on the labels
    assert len(expected) < 190
    assert reference_nms(boxes.tolist(), scores.tolist(), [0] * 200, threshold) != expected


@pytest.mark.parametrize("box, window", [
    ((40, 20, 60, 40), (39, 19, 61, 41)),     # 20 px box + 10% context, centred
    ((0, 0, 10, 30), (0, 0, 33, 33)),         # shifted inside the frame at the top-left corner
    ((90, 50, 100, 60), (89, 49, 100, 60)),   # and at the bottom-right
    ((0, 0, 100, 60), (20, 0, 80, 60)),       # never larger than the shorter side
    ((5, 5, 5, 5), (4, 4, 5, 5)),             # a point still gives one pixel
])
def test_square_crop_window(box, window):
    assert square_crop_window(box, height=60, width=100, context=0.1) == window
