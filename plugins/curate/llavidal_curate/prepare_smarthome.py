"""``llavidal prepare smarthome-ar``: person-cropped Toyota Smarthome clips for ADLMCQ Smarthome-AR.

Copies ADL-X/LLAVIDAL ``scripts/data_processing/sh_human_cropping.py``: per frame, the person boxes of a
detector (the original: ultralytics YOLO ``yolo11n.pt``, class ``person``); a frame without a person is
dropped; more than two → the first two (here: the two highest scores); two → the box around both; the box
(integer corners) grows by ``slack`` (48) on every side, the frame is padded with black when the box leaves
it, cropped and resized to 224x224. Output ``OUT/<name>.mp4`` (MPEG-4 part 2, the original's ``mp4v``, at
the source frame rate) for ``<name>.mp4``/``<name>.avi`` — the file names ADLMCQ Smarthome-AR's
``video_id`` paths end in, which is what the evaluation opens under ``--videos``.

Detectors (``--detector``): a transformers object-detection model (``AutoModelForObjectDetection``: DETR,
Conditional/Deformable DETR, RT-DETR, YOLOS ...; folder or Hub id) whose ``id2label`` has ``person``; or
``annotations:DIR`` with ``DIR/<name>.json`` = a list, per frame, of ``[x1, y1, x2, y2]`` (or with a
fifth value, a score) person boxes in pixels (frames past its end have none).

Padding uses the grown box's size (the original pads by the box's size before the slack, which is not enough
when the slack exceeds it; where it is enough the crops are the same).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SLACK = 48
OUTPUT_SIZE = (224, 224)
VIDEO_SUFFIXES = (".mp4", ".avi")
ANNOTATIONS_PREFIX = "annotations:"


def person_crop_box(boxes: np.ndarray, slack: int = SLACK) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The crop box of one frame from its person boxes ``(n, 4)`` ``x1, y1, x2, y2`` in score order, or None
    when there are none (``crop_and_save_video_yolo`` + ``process_frame``'s slack)."""
    if len(boxes) == 0:
        return None
    boxes = np.asarray(boxes, dtype=np.float64)[:2].astype(int)
    top_left = (int(boxes[:, 0].min()) - slack, int(boxes[:, 1].min()) - slack)
    bottom_right = (int(boxes[:, 2].max()) + slack, int(boxes[:, 3].max()) + slack)
    return top_left, bottom_right


class AnnotationBoxes:
    """Person boxes read from ``DIR/<name>.json`` (module docstring)."""

    def __init__(self, folder: Path):
        from llavidal_core.errors import UsageError

        if not folder.is_dir():
            raise UsageError(f"--detector annotations:{folder}: no such folder")
        self.folder = folder

    def video(self, name: str):
        path = self.folder / f"{name}.json"
        try:
            frames = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read person boxes ({exc})") from exc
        if not isinstance(frames, list):
            raise ValueError(f"{path}: expected a list of per-frame box lists")

        def boxes(index: int, frame: np.ndarray) -> np.ndarray:
            found = frames[index] if index < len(frames) else []
            try:
                array = np.asarray(found, dtype=np.float64).reshape(-1, len(found[0]) if found else 4)
            except (ValueError, TypeError, IndexError) as exc:
                raise ValueError(f"{path}: frame {index}: boxes must be [x1, y1, x2, y2(, score)] lists") from exc
            if array.shape[1] not in (4, 5):
                raise ValueError(f"{path}: frame {index}: boxes must have 4 or 5 numbers")
            if array.shape[1] == 5:
                array = array[np.argsort(-array[:, 4], kind="stable")]
            return array[:, :4]

        return boxes


class TransformersDetector:
    """Person boxes from a transformers object-detection model, on ``device``, score ≥ ``threshold``."""

    def __init__(self, model: str, threshold: float, device: str = "cpu"):
        import torch
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        from llavidal_core.errors import UsageError

        self.processor = AutoImageProcessor.from_pretrained(model)
        self.model = AutoModelForObjectDetection.from_pretrained(model).to(device).eval()
        labels = {str(label).lower(): int(i) for i, label in self.model.config.id2label.items()}
        if "person" not in labels:
            raise UsageError(f"--detector {model}: its labels have no 'person'")
        self.person, self.threshold, self.device, self.torch = labels["person"], threshold, device, torch

    def video(self, name: str):
        def boxes(index: int, frame: np.ndarray) -> np.ndarray:
            inputs = self.processor(images=frame, return_tensors="pt").to(self.device)
            with self.torch.inference_mode():
                outputs = self.model(**inputs)
            result = self.processor.post_process_object_detection(
                outputs, threshold=self.threshold, target_sizes=[frame.shape[:2]])[0]
            keep = result["labels"] == self.person
            scores, found = result["scores"][keep], result["boxes"][keep]
            order = self.torch.argsort(scores, descending=True)
            return found[order].float().cpu().numpy()

        return boxes


def make_detector(spec: str, threshold: float, device: str):
    """`AnnotationBoxes` for ``annotations:DIR``, else `TransformersDetector`."""
    if spec.startswith(ANNOTATIONS_PREFIX):
        return AnnotationBoxes(Path(spec[len(ANNOTATIONS_PREFIX):]))
    return TransformersDetector(spec, threshold, device)


def crop_video(video: Path, out_path: Path, boxes_for, *, slack: int = SLACK, size=OUTPUT_SIZE) -> tuple[int, int]:
    """Write the cropped video; returns (frames written, frames dropped without a person). `ValueError` when
    no frame has a person."""
    from llavidal_curate.video_io import crop_padded, iter_frames, resize_bilinear, video_info, write_video

    fps = video_info(video).fps
    dropped = 0

    def frames():
        nonlocal dropped
        for index, _, frame in iter_frames(video):
            box = person_crop_box(boxes_for(index, frame), slack)
            if box is None:
                dropped += 1
                continue
            yield resize_bilinear(crop_padded(frame, *box), size)

    try:
        written = write_video(out_path, frames(), fps, codec="mpeg4")
    except ValueError as exc:
        if "no frames" in str(exc):
            raise ValueError(f"{video}: no person found in any frame") from exc
        raise
    if dropped:
        logger.info("%s: %d frame(s) without a person dropped (as the original does)", video, dropped)
    return written, dropped


def run_prepare_smarthome(videos: Path, out: Path, detector: str, *, threshold: float = 0.25, slack: int = SLACK,
                          size=OUTPUT_SIZE, device: str = "cpu") -> int:
    """Crop every Smarthome clip in ``videos`` into ``OUT/<name>.mp4``; exit code 0 or 3."""
    from llavidal_core.errors import UsageError

    from llavidal_curate.step_runner import StepItem, run_steps

    if not Path(videos).is_dir():
        raise UsageError(f"--videos {videos}: no such folder")
    if not 0 <= threshold <= 1:
        raise UsageError("--threshold must be between 0 and 1")
    items = [StepItem(path.stem, str(path), (Path(out) / f"{path.stem}.mp4",), path)
             for path in sorted(Path(videos).iterdir())
             if path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")]
    if not items:
        raise UsageError(f"{videos}: no .mp4/.avi videos")
    pending = [item for item in items if not item.done()]
    boxes = make_detector(detector, threshold, device) if pending else None

    def process(item):
        crop_video(item.payload, item.outputs[0], boxes.video(item.key), slack=slack, size=size)

    return run_steps(items, out, process=process, description="prepare smarthome-ar")
