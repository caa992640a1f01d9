"""The chain with a scripted OWLv2 model / detector: exact pixel boxes on padded frames, exact tracks, shapes."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llavidal_object.detector import Owlv2Detector, detections_from_owlv2, shrink_frame
from llavidal_object.frames import VideoFrames
from llavidal_object.pipeline import ObjectOptions, extract_objects
from llavidal_object.tracking import Detection


def logit(p):
    return math.log(p / (1 - p))


class ScriptedOwlv2Model:
    """Stands in for `Owlv2ForObjectDetection`: returns scripted (logits, pred_boxes) image by image."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, script):
        self.script = list(script)
        self.pixel_shapes = []

    def __call__(self, input_ids, attention_mask, pixel_values):
        self.pixel_shapes.append(tuple(pixel_values.shape))
        images = [self.script.pop(0) for _ in range(len(pixel_values))]
        return SimpleNamespace(logits=torch.tensor(np.stack([i[0] for i in images]), dtype=torch.float32),
                               pred_boxes=torch.tensor(np.stack([i[1] for i in images]), dtype=torch.float32))


def test_scripted_owlv2_boxes_come_back_in_original_pixels_of_padded_frames(tiny_owlv2_dir):
    from transformers import AutoProcessor

    # frame 0: 60x100 (padded below to 100x100); frame 1: 100x50 (padded right to 100x100);
    # frame 2: 1080p, first shrunk for the processor: box fractions are of the padded 1920x1920 square
    frames = [np.zeros((60, 100, 3), np.uint8), np.zeros((100, 50, 3), np.uint8), np.zeros((1080, 1920, 3), np.uint8)]
    low = logit(0.05)
    wide = (np.array([[logit(0.9), low], [low, logit(0.8)], [logit(0.7), low], [logit(0.85), low]]),
            np.array([[0.5, 0.3, 0.2, 0.2],      # cup, fully inside
                      [0.5, 0.55, 0.2, 0.2],     # phone, reaching into the padding: clipped at y = 60
                      [0.1, 0.8, 0.1, 0.1],      # cup, entirely in the padding: no area left, dropped
                      [0.52, 0.3, 0.2, 0.2]]))   # cup, overlapping the first one: removed by NMS
    tall = (np.array([[low, logit(0.6)], [low, low], [low, low], [low, low]]),
            np.array([[0.45, 0.5, 0.2, 0.4], [0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]]))
    full_hd = (np.array([[logit(0.7), low]] * 4), np.array([[0.5, 0.25, 0.1, 0.1]] * 4))
    model = ScriptedOwlv2Model([wide, tall, full_hd])
    detector = Owlv2Detector(model, AutoProcessor.from_pretrained(tiny_owlv2_dir), score_threshold=0.1,
                             nms_iou=0.3, batch_size=2)
    found = detector.detect(frames, [3, 7, 9], ["cup", "phone"])
    assert model.pixel_shapes == [(2, 3, 32, 32), (1, 3, 32, 32)]  # padded to a square and resized
    assert list(found) == [3, 7, 9]
    assert [(d.frame_index, d.label) for d in found[3]] == [(3, "cup"), (3, "phone")]
    np.testing.assert_allclose([d.box for d in found[3]], [[40, 20, 60, 40], [40, 45, 60, 60]], atol=1e-4)
    np.testing.assert_allclose([d.score for d in found[3]], [0.9, 0.8], atol=1e-6)
    assert [(d.label, d.box) for d in found[7]] == [("phone", pytest.approx((35.0, 30.0, 50.0, 70.0)))]
    assert [(d.label, d.box) for d in found[9]] == [("cup", pytest.approx((864.0, 384.0, 1056.0, 576.0)))]
    assert detector.detect(frames, [3, 7, 9], []) == {3: [], 7: [], 9: []}


def test_large_frames_are_shrunk_with_their_aspect_kept():
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    shrunk = shrink_frame(frame, 64)
    assert shrunk.shape == (36, 64, 3) and shrunk.dtype == np.uint8 and (shrunk == 200).all()
    assert shrink_frame(frame, 4000) is frame


def test_padding_queries_beyond_the_tags_are_ignored():
    logits = np.array([[-5.0, -5.0, 9.0]])  # a third, padded query column must not win
    found = detections_from_owlv2(logits, [[0.5, 0.5, 0.5, 0.5]], 10, 10, ["cup", "phone"], 0)
    assert found == []


class ScriptedDetector:
    def __init__(self, detections):
        self.detections = detections
        self.calls = []

    def detect(self, frames, frame_indices, labels):
        self.calls.append((len(frames), list(frame_indices), list(labels)))
        return {i: [d for d in self.detections if d.frame_index == i] for i in frame_indices}


class ScriptedTagger:
    def __init__(self, answers):
        self.answers_given = answers
        self.seen = 0

    def answers(self, frames):
        self.seen = len(frames)
        return self.answers_given[:len(frames)]


def make_video(num_frames=5, height=60, width=100):
    frames = np.random.default_rng(0).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    return VideoFrames("clip.mp4", frames, [0, 10, 20, 30, 40][:num_frames], 41, "pyav")


def test_chain_tags_tracks_and_region_features(crop_encoder):
    cup = [Detection(i, (10 + i / 5, 10, 30 + i / 5, 30), "cup", 0.9) for i in (0, 10, 20, 30)]
    phone = [Detection(i, (50, 40, 90, 60), "phone", 0.6) for i in (20, 30, 40)]
    stray = [Detection(40, (0, 0, 5, 5), "cup", 0.99)]
    detector = ScriptedDetector(cup + phone + stray)
    tagger = ScriptedTagger(["a cup and a phone on a table", "there is a phone", "a man", "a cup"])
    result = extract_objects(make_video(), detector=detector, crop_encoder=crop_encoder, tagger=tagger,
                             stop_words=["table"], options=ObjectOptions(num_keyframes=4, max_objects=5))
    assert tagger.seen == 4
    assert detector.calls == [(5, [0, 10, 20, 30, 40], ["cup", "phone"])]
    assert result.tags == ["cup", "phone"]
    assert [t.detections for t in result.tracks] == [cup, phone]
    assert result.features.shape == (2, 8, crop_encoder.feature_dim)
    assert result.features.dtype == torch.float32 and torch.isfinite(result.features).all()
    trajectories = json.loads(result.metadata()["trajectories"])
    assert [t["label"] for t in trajectories] == ["cup", "phone"]
    assert trajectories[0]["feature_frames"] == [0, 0, 10, 10, 20, 20, 30, 30]
    assert trajectories[1]["detections"][0] == {"frame": 20, "box": [50, 40, 90, 60], "label": "phone",
                                                "score": 0.6}
    # the same crop gives the same features: the phone's rows at frames 20, 20, ... come from identical crops
    torch.testing.assert_close(result.features[1, 0], result.features[1, 1])


def test_given_tags_skip_the_tagger(crop_encoder):
    detector = ScriptedDetector([])
    tagger = ScriptedTagger(["a cup"])
    result = extract_objects(make_video(), detector=detector, crop_encoder=crop_encoder, tagger=tagger,
                             tags=["remote control"])
    assert tagger.seen == 0 and result.answers == []
    assert detector.calls[0][2] == ["remote control"]


@pytest.mark.parametrize("answers, detections", [
    (["a man and a woman"], []),                                 # no tags: the detector is not even asked
    (["a cup"], []),                                             # tags, but nothing detected
    (["a cup"], [Detection(0, (0, 0, 9, 9), "cup", 0.9)]),      # one detection: a track too short to keep
])
def test_zero_objects_give_empty_features(crop_encoder, answers, detections):
    result = extract_objects(make_video(), detector=ScriptedDetector(detections), crop_encoder=crop_encoder,
                             tagger=ScriptedTagger(answers))
    assert result.features.shape == (0, 8, crop_encoder.feature_dim)
    assert result.tracks == [] and json.loads(result.metadata()["trajectories"]) == []
