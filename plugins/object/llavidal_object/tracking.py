"""Object tracks: linking per-frame detections over time, ranking the tracks, and sampling points along them.

`link_detections` is greedy: frame by frame, each open track is offered the detections of its own label,
best IoU with the track's last box first, as long as the IoU reaches ``iou_threshold`` (and is above 0, so
empty boxes never link); a detection nobody takes starts a new track. IoU is `llavidal_object.boxes.box_iou`
(torchvision's, on pixel xyxy boxes), one ``(open tracks, detections)`` matrix per frame. A track that has
not been extended for more than ``max_gap`` sampled frames is closed. `select_tracks` drops tracks shorter
than ``min_length`` detections and keeps the ``max_objects`` best by (mean score x length).
`sample_track_points` picks the detections the features are taken at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from llavidal_object.boxes import box_iou


@dataclass(frozen=True)
class Detection:
    """One box on one frame: pixel xyxy, the tag it answers, and the detector's score."""

    frame_index: int
    box: tuple[float, float, float, float]
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"frame": self.frame_index, "box": [round(float(v), 2) for v in self.box], "label": self.label,
                "score": round(float(self.score), 4)}


@dataclass
class Track:
    """The detections of one object, in frame order (one per frame at most)."""

    label: str
    detections: list[Detection] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.detections)

    @property
    def mean_score(self) -> float:
        return float(np.mean([d.score for d in self.detections])) if self.detections else 0.0

    @property
    def rank_score(self) -> float:
        """Mean score x length: long, confident tracks first."""
        return self.mean_score * self.length

    @property
    def first_frame(self) -> int:
        return self.detections[0].frame_index

    @property
    def last_frame(self) -> int:
        return self.detections[-1].frame_index

    def to_dict(self) -> dict:
        return {"label": self.label, "score": round(self.mean_score, 4), "length": self.length,
                "detections": [d.to_dict() for d in self.detections]}


def link_detections(detections: Mapping[int, Sequence[Detection]], iou_threshold: float = 0.3,
                    max_gap: int = 1) -> list[Track]:
    """Link ``{frame_index: detections}`` into tracks, in order of their first frame.

    ``max_gap`` is how many consecutive sampled frames a track may miss and still be extended.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be within [0, 1], got {iou_threshold}")
    tracks: list[Track] = []
    last_step: list[int] = []  # per track: the sampled-frame step it was last extended at
    for step, frame_index in enumerate(sorted(detections)):
        frame_detections = sorted(detections[frame_index], key=lambda d: -d.score)
        open_tracks = [t for t in range(len(tracks)) if step - last_step[t] <= max_gap + 1]
        ious = box_iou([tracks[t].detections[-1].box for t in open_tracks], [d.box for d in frame_detections])
        pairs = []
        for row, t in enumerate(open_tracks):
            for d, detection in enumerate(frame_detections):
                if detection.label != tracks[t].label:
                    continue
                iou = float(ious[row, d])
                if iou >= iou_threshold and iou > 0:
                    pairs.append((-iou, t, d))
        taken_tracks: set[int] = set()
        taken_detections: set[int] = set()
        for _, t, d in sorted(pairs):
            if t in taken_tracks or d in taken_detections:
                continue
            tracks[t].detections.append(frame_detections[d])
            last_step[t] = step
            taken_tracks.add(t)
            taken_detections.add(d)
        for d, detection in enumerate(frame_detections):
            if d not in taken_detections:
                tracks.append(Track(detection.label, [detection]))
                last_step.append(step)
    return tracks


def select_tracks(tracks: Sequence[Track], min_length: int = 2, max_objects: int = 5) -> list[Track]:
    """The ``max_objects`` best tracks of at least ``min_length`` detections, best first.

    Ties in (mean score x length) go to the track that starts earlier, then to the label's alphabetical order.
    """
    if max_objects < 0 or min_length < 1:
        raise ValueError(f"need max_objects >= 0 and min_length >= 1, got {max_objects} and {min_length}")
    long_enough = [t for t in tracks if t.length >= min_length]
    ranked = sorted(long_enough, key=lambda t: (-t.rank_score, t.first_frame, t.label))
    return ranked[:max_objects]


def sample_track_points(track: Track, count: int = 8) -> list[Detection]:
    """``count`` detections evenly spread along ``track`` from its first to its last (repeated if it is shorter)."""
    if not track.detections:
        raise ValueError("cannot sample points along an empty track")
    positions = np.round(np.linspace(0, track.length - 1, count)).astype(int)
    return [track.detections[p] for p in positions]
