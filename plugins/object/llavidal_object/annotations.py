"""Annotated object tracks instead of a detector: ``--detector annotations:DIR``.

Datasets that come with object boxes (and the miniature world of ``llavidal demo``) need no OWLv2: each video
``<name>.<ext>`` has an annotation file ``DIR/<name>.json`` holding a JSON list of tracks, each
``{"label": str, "first_frame": int, "boxes": [[x0, y0, x1, y1], ...]}``: one box per frame from
``first_frame`` on, in pixels of the video's frames. The object tags of a video are the labels of its tracks;
the chain then links, selects and embeds the annotated boxes on the sampled frames as it does OWLv2's
(score 1.0). A missing or malformed annotation file is a `llavidal_core.errors.LlavidalError` naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_object.tracking import Detection

ANNOTATIONS_PREFIX = "annotations:"


def is_annotations_source(detector: str | None) -> bool:
    """Whether a ``--detector`` value names annotation files (``annotations:DIR``) rather than an OWLv2."""
    return isinstance(detector, str) and detector.startswith(ANNOTATIONS_PREFIX)


class AnnotatedTracks:
    """One video's annotated tracks, answering a detector's ``detect`` with the boxes on the frames asked for."""

    def __init__(self, path: Path, tracks: Sequence[dict]) -> None:
        self.path = path
        self.boxes: dict[int, list[tuple[str, tuple[float, ...]]]] = {}
        for number, track in enumerate(tracks):
            try:
                label, first, boxes = str(track["label"]), int(track["first_frame"]), track["boxes"]
                parsed = [tuple(float(v) for v in box) for box in boxes]
            except (KeyError, TypeError, ValueError) as exc:
                raise LlavidalError(f"{path}: track {number} is not {{'label', 'first_frame', 'boxes'}} "
                                    f"({type(exc).__name__}: {exc})") from None
            if first < 0 or any(len(box) != 4 or box[2] <= box[0] or box[3] <= box[1] for box in parsed):
                raise LlavidalError(f"{path}: track {number} ({label!r}) has a negative first_frame or a box that "
                                    "is not [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
            for offset, box in enumerate(parsed):
                self.boxes.setdefault(first + offset, []).append((label, box))

    @property
    def labels(self) -> list[str]:
        """The video's object tags: the labels of its tracks, sorted."""
        return sorted({label for boxes in self.boxes.values() for label, _ in boxes})

    def detect(self, frames, frame_indices: Sequence[int], labels: Sequence[str]) -> dict[int, list[Detection]]:
        """``{frame_index: detections}``: the annotated boxes of ``labels`` on each frame asked for."""
        wanted = set(labels)
        return {int(i): [Detection(int(i), box, label, 1.0) for label, box in self.boxes.get(int(i), [])
                         if label in wanted]
                for i in frame_indices}


class AnnotationFolder:
    """``DIR`` of ``annotations:DIR``: finds the annotation file of a video by its name."""

    def __init__(self, source: str) -> None:
        self.folder = Path(source.removeprefix(ANNOTATIONS_PREFIX)).expanduser()
        if not self.folder.is_dir():
            raise LlavidalError(f"{source}: no such folder of object annotations")

    def for_video(self, video: str | os.PathLike) -> AnnotatedTracks:
        path = self.folder / f"{Path(video).stem}.json"
        try:
            tracks = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LlavidalError(f"{video}: no object annotations for it ({path} does not exist)") from None
        except (OSError, ValueError) as exc:
            raise LlavidalError(f"{path}: cannot read object annotations ({type(exc).__name__}: {exc})") from None
        if not isinstance(tracks, list):
            raise LlavidalError(f"{path}: object annotations must be a JSON list of tracks")
        return AnnotatedTracks(path, tracks)
