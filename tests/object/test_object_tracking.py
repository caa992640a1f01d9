"""Tracking with scripted detections: IoU + label linking, gaps, short tracks, ranking, points along a track."""

import pytest

from llavidal_object.tracking import Detection, Track, link_detections, sample_track_points, select_tracks

CUP_A = [Detection(0, (10, 10, 30, 30), "cup", 0.9), Detection(10, (12, 10, 32, 30), "cup", 0.8),
         Detection(20, (14, 10, 34, 30), "cup", 0.9), Detection(40, (18, 10, 38, 30), "cup", 0.7)]
CUP_B = [Detection(0, (60, 10, 80, 30), "cup", 0.6), Detection(10, (60, 10, 80, 30), "cup", 0.6)]
PHONE = [Detection(10, (12, 10, 32, 30), "phone", 0.95), Detection(20, (13, 10, 33, 30), "phone", 0.5)]
BOOK = [Detection(30, (0, 40, 10, 50), "book", 0.99)]


def by_frame(*groups):
    frames = {0: [], 10: [], 20: [], 30: [], 40: []}
    for group in groups:
        for detection in group:
            frames[detection.frame_index].append(detection)
    return frames


def test_links_by_iou_and_label_across_a_one_frame_gap():
    tracks = link_detections(by_frame(CUP_A, CUP_B, PHONE, BOOK), iou_threshold=0.3, max_gap=1)
    assert [(t.label, t.detections) for t in tracks] == [
        ("cup", CUP_A), ("cup", CUP_B), ("phone", PHONE), ("book", BOOK)]


def test_a_longer_gap_than_max_gap_starts_a_new_track():
    tracks = link_detections(by_frame(CUP_A), iou_threshold=0.3, max_gap=0)
    assert [t.detections for t in tracks] == [CUP_A[:3], CUP_A[3:]]


def test_the_best_overlap_wins_when_two_tracks_want_one_box():
    frames = {0: [Detection(0, (0, 0, 10, 10), "cup", 0.9), Detection(0, (8, 0, 18, 10), "cup", 0.8)],
              1: [Detection(1, (7, 0, 17, 10), "cup", 0.7), Detection(1, (1, 0, 11, 10), "cup", 0.6)]}
    tracks = link_detections(frames, iou_threshold=0.1)
    assert [[d.box for d in t.detections] for t in tracks] == [
        [(0, 0, 10, 10), (1, 0, 11, 10)], [(8, 0, 18, 10), (7, 0, 17, 10)]]


def test_select_drops_short_tracks_and_ranks_by_score_times_length():
    tracks = link_detections(by_frame(CUP_A, CUP_B, PHONE, BOOK), iou_threshold=0.3, max_gap=1)
    assert [t.rank_score for t in tracks] == pytest.approx([3.3, 1.2, 1.45, 0.99])
    assert [t.detections for t in select_tracks(tracks, min_length=2, max_objects=5)] == [CUP_A, PHONE, CUP_B]
    assert [t.detections for t in select_tracks(tracks, min_length=2, max_objects=2)] == [CUP_A, PHONE]
    assert [t.detections for t in select_tracks(tracks, min_length=1, max_objects=2)] == [CUP_A, PHONE]
    assert select_tracks(tracks, max_objects=0) == []
    assert select_tracks([]) == []


def test_points_are_spread_along_the_track_and_repeat_when_it_is_short():
    track = Track("cup", CUP_A)
    assert sample_track_points(track, 8) == [CUP_A[i] for i in (0, 0, 1, 1, 2, 2, 3, 3)]
    long_track = Track("cup", [Detection(i, (0, 0, 1, 1), "cup", 0.5) for i in range(16)])
    assert [p.frame_index for p in sample_track_points(long_track, 8)] == [0, 2, 4, 6, 9, 11, 13, 15]


def test_no_detections_no_tracks():
    assert link_detections({0: [], 5: []}) == []
    assert link_detections({}) == []


def test_an_iou_exactly_at_the_threshold_links_and_empty_boxes_never_do():
    # IoU((0,0,10,10), (0,0,10,5)) is exactly 0.5: linking needs IoU >= threshold (unlike NMS's strict >)
    half = {0: [Detection(0, (0, 0, 10, 10), "cup", 0.9)], 1: [Detection(1, (0, 0, 10, 5), "cup", 0.9)]}
    assert [t.length for t in link_detections(half, iou_threshold=0.5)] == [2]
    assert [t.length for t in link_detections(half, iou_threshold=0.51)] == [1, 1]
    # two identical points: torchvision's IoU is 0 / 0 = NaN, ours 0, and an IoU of 0 never links
    points = {0: [Detection(0, (3, 3, 3, 3), "cup", 0.9)], 1: [Detection(1, (3, 3, 3, 3), "cup", 0.9)]}
    assert [t.length for t in link_detections(points, iou_threshold=0.0)] == [1, 1]


def test_each_open_track_takes_its_best_box_when_many_overlap():
    # three tracks and three boxes per frame, all overlapping: the IoU matrix is used as a whole, best pair first
    first = [Detection(0, (x, 0, x + 10, 10), "cup", 0.9 - x / 100) for x in (0, 4, 8)]
    second = [Detection(1, (x, 0, x + 10, 10), "cup", 0.5 + x / 100) for x in (9, 1, 5)]
    tracks = link_detections({0: first, 1: second}, iou_threshold=0.1)
    assert [[d.box[0] for d in t.detections] for t in tracks] == [[0, 1], [4, 5], [8, 9]]
