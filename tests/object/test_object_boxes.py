"""Box geometry: OWLv2's square padding mapped back to original pixels, IoU, per-class NMS, crop windows."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("box, window", [
    ((40, 20, 60, 40), (39, 19, 61, 41)),     # 20 px box + 10% context, centred
    ((0, 0, 10, 30), (0, 0, 33, 33)),         # shifted inside the frame at the top-left corner
    ((90, 50, 100, 60), (89, 49, 100, 60)),   # and at the bottom-right
    ((0, 0, 100, 60), (20, 0, 80, 60)),       # never larger than the shorter side
    ((5, 5, 5, 5), (4, 4, 5, 5)),             # a point still gives one pixel
])
def test_square_crop_window(box, window):
    assert square_crop_window(box, height=60, width=100, context=0.1) == window
