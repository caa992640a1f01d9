"""``llavidal extract object``: its arguments (argparse only, cheap to import) and its entry function."""

from __future__ import annotations

import argparse

from llavidal_object.models import DEFAULT_DETECTOR, DEFAULT_ENCODER, DEFAULT_TAGGER

EXTRACT_HELP = "extract object cue features (BLIP-2 tags, OWLv2 tracks, CLIP crops) from video files"


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    from llavidal_core.commands.extraction import ENGINE_DESCRIPTION, add_extraction_arguments

    parser.description = (
        "Extract the object cue: BLIP-2 names the objects on a few keyframes (or --tags gives them), OWLv2 "
        "finds them on --num-frames frames, detections are linked into tracks, and the best --max-objects "
        "tracks each give 8 CLIP crop features (tensor 'object', shape (n, 8, D); tags and trajectories as JSON "
        f"in its metadata). {ENGINE_DESCRIPTION}"
    )
    add_extraction_arguments(parser, workers=0, batch_size=1, inputs_help="video files, folders or lists of paths")
    parser.add_argument("--tagger", default=DEFAULT_TAGGER,
                        help="BLIP-2 model folder or Hub id, with its processor (default: %(default)s)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR,
                        help="OWLv2 model folder or Hub id, with its processor (default: %(default)s); or "
                             "annotations:DIR to take each video's boxes from DIR/<video name>.json instead "
                             "(a list of {label, first_frame, boxes}; no BLIP-2 is then needed)")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help="CLIP model folder or Hub id for crop features, with its image processor: a full "
                             "CLIP model or a CLIPVisionModelWithProjection (default: %(default)s)")
    parser.add_argument("--tags", default=None, metavar="A,B,C",
                        help="object names to look for, comma-separated; skips BLIP-2")
    parser.add_argument("--stop-words", default="", metavar="A,B",
                        help="object names never to keep, comma-separated")
    parser.add_argument("--num-frames", type=int, default=16, help="frames sampled per video (default: 16)")
    parser.add_argument("--keyframes", type=int, default=4, help="frames BLIP-2 is asked about (default: 4)")
    parser.add_argument("--max-tags", type=int, default=10, help="most tags kept from BLIP-2 (default: 10)")
    parser.add_argument("--max-objects", type=int, default=5, help="most object tracks kept (default: 5)")
    parser.add_argument("--min-track-length", type=int, default=2,
                        help="fewest detections in a kept track (default: 2)")
    parser.add_argument("--max-gap", type=int, default=1,
                        help="sampled frames a track may miss and still be extended (default: 1)")
    parser.add_argument("--score-threshold", type=float, default=0.1, help="OWLv2 box score threshold (default: 0.1)")
    parser.add_argument("--nms-iou", type=float, default=0.3, help="per-class NMS IoU (default: 0.3)")
    parser.add_argument("--track-iou", type=float, default=0.3,
                        help="IoU linking a box to a track (default: 0.3)")
    parser.add_argument("--decoder", choices=("auto", "decord", "pyav"), default="auto",
                        help="video decoder (default: auto = decord, then PyAV)")
    parser.add_argument("--frame-batch-size", type=int, default=8,
                        help="frames per model forward pass (default: 8)")


def _checked_tags(args: argparse.Namespace) -> tuple[list[str] | None, list[str]]:
    """``(tags, stop_words)`` from the command line; bad numbers or empty --tags are usage errors."""
    from llavidal_core.errors import UsageError
    from llavidal_object.tags import split_user_tags

    for name in ("num_frames", "keyframes", "max_tags", "min_track_length", "frame_batch_size"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.max_objects < 0 or args.max_gap < 0:
        raise UsageError("--max-objects and --max-gap must be 0 or more")
    for name in ("score_threshold", "nms_iou", "track_iou"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be within [0, 1]")
    stop_words = [w for w in args.stop_words.split(",") if w.strip()]
    if args.tags is None:
        return None, stop_words
    try:
        return split_user_tags(args.tags, stop_words), stop_words
    except ValueError as exc:
        raise UsageError(f"--tags: {exc}") from exc


def run_extract(args: argparse.Namespace) -> int:
    from llavidal_core.commands.extraction import run_extract_command
    from llavidal_core.video_ids import VIDEO_EXTENSIONS

    tags, stop_words = _checked_tags(args)

    def build(device, dtype):
        from llavidal_object.encoder import ObjectCueEncoder

        return ObjectCueEncoder(
            tagger=args.tagger, detector=args.detector, encoder=args.encoder, tags=tags, stop_words=stop_words,
            num_frames=args.num_frames, num_keyframes=args.keyframes, max_tags=args.max_tags,
            score_threshold=args.score_threshold, nms_iou=args.nms_iou, track_iou=args.track_iou,
            max_gap=args.max_gap, min_track_length=args.min_track_length, max_objects=args.max_objects,
            decoder=args.decoder, batch_size=args.frame_batch_size, dtype=str(dtype).removeprefix("torch."),
        ).to(device)

    return run_extract_command(args, "object", build, sorted(VIDEO_EXTENSIONS))
