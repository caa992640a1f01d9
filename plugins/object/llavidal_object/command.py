"""``llavidal extract object``: its arguments (argparse only, cheap to import) and its entry function."""

from __future__ import annotations

import argparse

from llavidal_object.models import DEFAULT_DETECTOR, DEFAULT_ENCODER, DEFAULT_TAGGER

EXTRACT_HELP = "extract object cue features (BLIP-2 tags, OWLv2 tracks, CLIP crops) from video files"


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Extract the object cue: BLIP-2 names the objects on a few keyframes (or --tags gives them), OWLv2 "
        "finds them on --num-frames frames, detections are linked into tracks, and the best --max-objects "
        "tracks each give 8 CLIP crop features. INPUT is a video file, a folder (searched recursively for "
        "video files) or a text file listing paths, one per line. Each video is written as "
        "OUT/<video_id>.safetensors (tensor 'object', shape (n, 8, D); tags and trajectories as JSON in its "
        "metadata); videos already holding the cue are skipped. Videos that cannot be decoded are listed in "
        "OUT/errors.jsonl. Exit code: 0 all done, 3 some failed (the rest were written), 2 usage error. "
        "Under torchrun, RANK/WORLD_SIZE split the sorted inputs between processes."
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or lists of paths")
    parser.add_argument("--out", required=True, help="output folder (a feature store)")
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
    parser.add_argument("--batch-size", type=int, default=8, help="frames per model forward pass (default: 8)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available; under "
                                                       "torchrun cuda:LOCAL_RANK)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="model precision (default: float32 on CPU, float16 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run_extract(args: argparse.Namespace) -> int:
    from llavidal_object.extract import run_extraction

    return run_extraction(args)
