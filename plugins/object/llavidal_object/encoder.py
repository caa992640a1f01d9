"""`ObjectCueEncoder`: video path → ``(8 n, D)`` object rows, with BLIP-2 tags, OWLv2 tracks and CLIP crops.

The encoder is a pipeline over three pretrained models named by folder or Hub id. ``save_pretrained``
writes only ``config.json`` (those names and the chain's options): the weights stay in the three models'
own folders, and ``from_pretrained`` loads them from there again. The three models are sub-modules, so
``.to(device, dtype)`` moves all of them. In the two phases of a `CueEncoder`: ``prepare(path)`` reads the
sampled frames (and, with ``annotations:DIR``, the video's boxes) on the CPU; ``forward(samples)`` runs the
chain on each and gives features ``(n, 8, D)`` with tags and trajectories as metadata (`encode` flattens
them to ``(8 n, D)`` rows). `extract` gives one video's full result.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from llavidal_core.encoder import CueEncoder, EncodedFeatures
from llavidal_core.encoder_records import EncoderRecord
from llavidal_core.video_ids import VIDEO_EXTENSIONS
from llavidal_core.seed_cues import OBJECT
from llavidal_object import __version__
from llavidal_object.annotations import (ANNOTATIONS_PREFIX, AnnotatedTracks, AnnotationFolder,
                                         is_annotations_source)
from llavidal_object.crop_encoder import ClipCropEncoder
from llavidal_object.detector import DEFAULT_QUERY_TEMPLATE, Owlv2Detector
from llavidal_object.frames import VideoFrames, read_video_frames
from llavidal_object.models import (DEFAULT_DETECTOR, DEFAULT_ENCODER, DEFAULT_TAGGER, load_crop_encoder,
                                   load_model_and_processor)
from llavidal_object.pipeline import ObjectExtraction, ObjectOptions, extract_objects, options_metadata
from llavidal_object.tagger import DEFAULT_PROMPT, Blip2Tagger
from llavidal_object.tags import split_user_tags

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ObjectInput:
    """One prepared video: its sampled frames and, with ``annotations:DIR``, its annotated boxes."""

    frames: VideoFrames
    annotated: AnnotatedTracks | None = None


@dataclass(frozen=True)
class ObjectInputReader:
    """The picklable path → `ObjectInput` step (no model weights), for DataLoader workers."""

    num_frames: int
    decoder: str = "auto"
    annotations: AnnotationFolder | None = None

    def __call__(self, path) -> ObjectInput:
        annotated = self.annotations.for_video(path) if self.annotations is not None else None
        return ObjectInput(read_video_frames(str(path), self.num_frames, self.decoder), annotated)


class ObjectCueEncoder(CueEncoder):
    """The ``object`` cue: 8 CLIP region-feature rows along each of the video's best object tracks.

    A raw input is a video file path (``reads_video_files``).

    Args (saved in ``config.json``):
        tagger, detector, encoder: BLIP-2, OWLv2 and CLIP model folders or Hub ids (each with its processor);
            the encoder may be a full CLIP model or a CLIPVisionModelWithProjection, of any projection size.
            ``detector="annotations:DIR"`` reads each video's boxes from ``DIR/<name>.json`` instead
            (`llavidal_object.annotations`); its tags are then the annotated labels, and no tagger is needed.
        tags: fixed object tags; when given, BLIP-2 is neither loaded nor run.
        stop_words: tags never to keep (e.g. ``["table"]``).
        num_frames: frames sampled evenly over the video; OWLv2 runs on all of them, BLIP-2 on
            ``num_keyframes`` of them, and crops are cut from them.
        score_threshold, nms_iou: OWLv2 box score threshold and per-class NMS IoU.
        num_keyframes, max_tags, track_iou, max_gap, min_track_length, max_objects: see `ObjectOptions`.
        dtype: ``float32``, ``float16`` or ``bfloat16`` for the three models (default: float32).
    """

    reads_video_files = True
    input_suffixes = tuple(sorted(VIDEO_EXTENSIONS))

    def __init__(self, *, tagger: str | None = DEFAULT_TAGGER, detector: str = DEFAULT_DETECTOR,
                 encoder: str = DEFAULT_ENCODER, tags: list[str] | None = None, stop_words: list[str] | None = None,
                 num_frames: int = 16, num_keyframes: int = 4, max_tags: int = 10, score_threshold: float = 0.1,
                 nms_iou: float = 0.3, track_iou: float = 0.3, max_gap: int = 1, min_track_length: int = 2,
                 max_objects: int = 5, crop_context: float = 0.1, tag_prompt: str = DEFAULT_PROMPT,
                 query_template: str = DEFAULT_QUERY_TEMPLATE, decoder: str = "auto", batch_size: int = 8,
                 dtype: str = "float32") -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.options = ObjectOptions(num_keyframes=num_keyframes, max_tags=max_tags, track_iou=track_iou,
                                     max_gap=max_gap, min_track_length=min_track_length, max_objects=max_objects)
        self.tags = split_user_tags(tags, stop_words or ()) if tags is not None else None
        self.annotations = AnnotationFolder(detector) if is_annotations_source(detector) else None
        if self.tags is None and tagger is None and self.annotations is None:
            raise ValueError("give object tags, a BLIP-2 tagger or detector='annotations:DIR'")
        self.stop_words = list(stop_words or ())
        self.num_frames = num_frames
        self.decoder = decoder
        uses_tagger = self.tags is None and self.annotations is None
        self.names = {"tagger": tagger if uses_tagger else None, "detector": detector, "encoder": encoder}
        torch_dtype = DTYPES[dtype]

        self.tagger_model = None
        self.tagger = None
        if uses_tagger:
            self.tagger_model, processor = load_model_and_processor(
                "Blip2ForConditionalGeneration", tagger, "--tagger", torch_dtype)
            self.tagger = Blip2Tagger(self.tagger_model, processor, prompt=tag_prompt, batch_size=batch_size)
        self.detector_model = self.detector = None
        if self.annotations is None:
            self.detector_model, processor = load_model_and_processor(
                "Owlv2ForObjectDetection", detector, "--detector", torch_dtype)
            self.detector = Owlv2Detector(self.detector_model, processor, score_threshold=score_threshold,
                                          nms_iou=nms_iou, query_template=query_template, batch_size=batch_size)
        self.crop_model, processor = load_crop_encoder(encoder, torch_dtype)
        self.crop_encoder = ClipCropEncoder(self.crop_model, processor, context=crop_context,
                                            batch_size=4 * batch_size)

    @property
    def spec(self):
        boxes = "annotated boxes" if self.annotations is not None else "OWLv2 boxes"
        return dataclasses.replace(
            OBJECT, feature_dim=self.crop_encoder.feature_dim, version=__version__,
            description=f"CLIP crop embeddings ({self.crop_encoder.feature_dim}-d) at {self.options.points_per_object} "
                        f"points along each of up to {self.options.max_objects} tracks of {boxes} on "
                        f"{self.num_frames} frames")

    def prepare(self, raw) -> ObjectInput:
        """Read a video's sampled frames (and its annotated boxes): CPU only. Raises
        `llavidal_video.decoding.VideoDecodeError`, or a `LlavidalError` for a video without annotations."""
        return raw if isinstance(raw, ObjectInput) else self.preparer()(raw)

    def preparer(self, in_worker: bool = False) -> ObjectInputReader:
        return ObjectInputReader(self.num_frames, self.decoder, self.annotations)

    def forward(self, samples: Sequence[ObjectInput]) -> list[EncodedFeatures]:
        """Run the chain (tags, detection, tracks, crops) on each prepared video: features ``(n, 8, D)``."""
        outputs = []
        for sample in samples:
            result = self._run_chain(sample)
            video = sample.frames
            outputs.append(EncodedFeatures(result.features, {
                **result.metadata(), "decoder": video.decoder, "frames": str(len(video.indices)),
                "total_frames": str(video.total_frames), "frame_indices": json.dumps(video.indices),
                "layout": "objects,points,features"}))
        return outputs

    @torch.inference_mode()
    def extract(self, path: str) -> tuple[ObjectExtraction, VideoFrames]:
        """``(result, frames)`` for one video: features ``(n, 8, D)`` with tags and trajectories, and its frames."""
        sample = self.prepare(path)
        return self._run_chain(sample), sample.frames

    def _run_chain(self, sample: ObjectInput) -> ObjectExtraction:
        detector, tags = self.detector, self.tags
        if sample.annotated is not None:
            detector = sample.annotated
            tags = tags if tags is not None else [t for t in detector.labels if t not in self.stop_words]
        return extract_objects(sample.frames, detector=detector, crop_encoder=self.crop_encoder, tagger=self.tagger,
                               tags=tags, stop_words=self.stop_words, options=self.options)

    def encoder_record(self) -> EncoderRecord:
        """Every ``__init__`` option (model names and the chain's knobs); the three models are copied with a
        model trained on these features when they are folders here."""
        options = dict(self._hub_mixin_config or {})
        if self.annotations is not None:  # found from any working directory
            options["detector"] = f"{ANNOTATIONS_PREFIX}{self.annotations.folder.resolve()}"
        dtype = options.get("dtype", "float32")
        return EncoderRecord(pretrained=None, options=options, model_options=("tagger", "detector", "encoder"),
                             dtype=dtype)

    def describe(self) -> dict[str, str]:
        """What produced the features: the names of the models used."""
        return {key: str(value) for key, value in self.names.items() if value is not None}

    def feature_metadata(self) -> dict[str, str]:
        """The spec and record (`CueEncoder.feature_metadata`), the models used and the chain's settings."""
        config = self._hub_mixin_config or {}
        return {**self.describe(), **options_metadata(self.options), "num_frames": str(self.num_frames),
                "score_threshold": str(config.get("score_threshold", 0.1)), "nms_iou": str(config.get("nms_iou", 0.3)),
                "dtype": str(config.get("dtype", "float32")), **super().feature_metadata()}

    def _save_pretrained(self, save_directory: Path) -> None:
        """Nothing besides ``config.json``: the weights are the three named models'."""

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, **model_kwargs) -> "ObjectCueEncoder":
        return cls(**model_kwargs)
