"""The object cue's chain on one video's frames: tags → boxes → tracks → 8 region features per object.

`extract_objects` takes already-decoded frames (`llavidal_object.frames.VideoFrames`) and the three parts,
each replaceable by anything with the same method (tests script the detector): a tagger (``answers``), a
detector (``detect``) and a crop encoder (``encode_points``, ``feature_dim``). Given tags skip the tagger.
Zero tags, detections or tracks is a valid result: features of shape ``(0, points_per_object, D)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from llavidal_object.frames import VideoFrames
from llavidal_object.tags import build_vocabulary
from llavidal_object.tracking import Detection, Track, link_detections, sample_track_points, select_tracks
from llavidal_video.sampling import uniform_indices


@dataclass(frozen=True)
class ObjectOptions:
    """The knobs of the chain (saved with an `ObjectCueEncoder` and recorded with the features)."""

    num_keyframes: int = 4
    max_tags: int = 10
    track_iou: float = 0.3
    max_gap: int = 1
    min_track_length: int = 2
    max_objects: int = 5
    points_per_object: int = 8

    def __post_init__(self) -> None:
        for name in ("num_keyframes", "max_tags", "min_track_length", "points_per_object"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_objects < 0 or self.max_gap < 0:
            raise ValueError("max_objects and max_gap must be 0 or more")


@dataclass
class ObjectExtraction:
    """What the chain found in one video."""

    features: torch.Tensor  # (n_objects, points_per_object, D)
    tags: list[str]
    answers: list[str]
    tracks: list[Track]
    points: list[list[Detection]] = field(default_factory=list)  # per track: the detections features come from

    def trajectories(self) -> list[dict]:
        """The object trajectories as JSON-able dicts, in feature order."""
        return [dict(track.to_dict(), feature_frames=[p.frame_index for p in points],
                     feature_boxes=[[round(float(v), 2) for v in p.box] for p in points])
                for track, points in zip(self.tracks, self.points)]

    def metadata(self) -> dict[str, str]:
        """String metadata for the feature store: tags, answers and trajectories as JSON."""
        return {"num_objects": str(len(self.tracks)), "tags": json.dumps(self.tags),
                "tag_answers": json.dumps(self.answers), "trajectories": json.dumps(self.trajectories())}


def choose_tags(video: VideoFrames, tagger, tags: Sequence[str] | None, stop_words: Sequence[str],
                options: ObjectOptions) -> tuple[list[str], list[str]]:
    """``(tags, answers)``: the given tags as they are, or BLIP-2's answers on evenly spread keyframes, parsed."""
    if tags is not None:
        return list(tags), []
    if tagger is None:
        raise ValueError("give either object tags or a tagger")
    keyframes = [video.frames[i] for i in uniform_indices(len(video.frames), options.num_keyframes)]
    answers = tagger.answers(keyframes)
    return build_vocabulary(answers, stop_words, options.max_tags), answers


def extract_objects(video: VideoFrames, *, detector, crop_encoder, tagger=None, tags: Sequence[str] | None = None,
                    stop_words: Sequence[str] = (), options: ObjectOptions = ObjectOptions()) -> ObjectExtraction:
    """Run the whole chain on ``video``'s frames."""
    chosen, answers = choose_tags(video, tagger, tags, stop_words, options)
    tracks: list[Track] = []
    if chosen:
        detections = detector.detect(video.frames, video.indices, chosen)
        tracks = select_tracks(link_detections(detections, options.track_iou, options.max_gap),
                               options.min_track_length, options.max_objects)
    points = [sample_track_points(track, options.points_per_object) for track in tracks]
    position = {index: row for row, index in enumerate(video.indices)}
    flat = crop_encoder.encode_points(video.frames, position, [p for track_points in points for p in track_points])
    features = flat.reshape(len(tracks), options.points_per_object, crop_encoder.feature_dim)
    return ObjectExtraction(features, chosen, answers, tracks, points)


def options_metadata(options: ObjectOptions) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in asdict(options).items()}
