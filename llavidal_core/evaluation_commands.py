"""Built-in ``llavidal eval mcq``: check an ADLMCQ file, or score a model on it deterministically."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_core.hookspecs import hookimpl

DTYPES = ("float32", "bfloat16", "float16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="llavidal model folder or Hub id (not needed with --check)")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="only validate a questions file and print a JSON summary (no model)")
    parser.add_argument("--questions", type=Path, nargs="+", metavar="FILE", help="ADLMCQ files, any schema")
    parser.add_argument("--features", type=Path, metavar="DIR", help="feature store with the questions' videos")
    parser.add_argument("--videos", type=Path, metavar="DIR",
                        help="or: the videos themselves (searched recursively by id); their video features are "
                             "computed with the model's own encoder")
    parser.add_argument("--mode", choices=("loglik", "generate"), default="loglik",
                        help="loglik: best option by log-likelihood (default); generate: greedy answer + rules")
    parser.add_argument("--normalize", choices=("mean", "sum"), default="mean",
                        help="option score: mean (default) or sum of its token log-probabilities")
    parser.add_argument("--limit", type=int, metavar="N", help="first N questions of each file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the report as JSON here")
    parser.add_argument("--predictions", type=Path, metavar="FILE", help="write one JSON line per question here")


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def videos_by_id(folder: Path) -> dict[str, Path]:
    """The videos under ``folder`` by id (file name up to the first dot); two with one id are an error."""
    from llavidal_core.extraction import collect_inputs, index_by_video_id

    return index_by_video_id(collect_inputs([folder], lambda path: path.suffix.lower() in VIDEO_SUFFIXES))


def run_check(path: Path) -> int:
    from llavidal_core.evaluation.mcq_files import MCQFormatError, load_mcq_file

    try:
        loaded = load_mcq_file(path)
    except MCQFormatError as exc:
        print(f"llavidal: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(loaded.summary(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        return run_check(args.check)
    if not args.model or not args.questions or (args.features is None) == (args.videos is None):
        args.usage_parser.error("give MODEL, --questions and one of --features / --videos (or --check FILE)")
    from llavidal_core.atomic_files import atomic_write_bytes
    from llavidal_core.evaluation.mcq_eval import evaluate_mcq, features_from_store, features_from_videos
    from llavidal_core.evaluation.mcq_files import load_mcq_file
    from llavidal_core.features import FeatureStore
    from llavidal_core.inference import LlavidalPipeline

    files = [load_mcq_file(path) for path in args.questions]
    folder = args.features if args.features is not None else args.videos
    if not folder.is_dir():
        raise LlavidalError(f"{folder}: no such folder")
    pipeline = LlavidalPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                                load_encoders=args.videos is not None)
    model, processor = pipeline.model, pipeline.processor
    if args.features is not None:
        features_for = features_from_store(FeatureStore(args.features, create=False), pipeline.cue_names)
    else:
        features_for = features_from_videos(pipeline, videos_by_id(args.videos))
    evaluation = evaluate_mcq(model, processor, files, features_for, mode=args.mode, normalize=args.normalize,
                              limit=args.limit)
    report = evaluation.report() | {"model": str(args.model), "mode": args.mode, "normalize": args.normalize,
                                    "files": [str(f.path) for f in files]}
    print(report["markdown"] or "no question had features for this model's cues")
    for task, count in report["skipped_missing_features"].items():
        print(f"{task}: {count} questions skipped (no features for their video)", file=sys.stderr)
    if args.out:
        atomic_write_bytes(args.out, json.dumps(report, indent=2).encode("utf-8"))
    if args.predictions:
        lines = "".join(json.dumps(record) + "\n" for record in evaluation.prediction_records())
        atomic_write_bytes(args.predictions, lines.encode("utf-8"))
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("eval", "mcq"), help="score a model on ADLMCQ files (deterministic log-likelihood by default)",
             add_arguments=add_arguments, run=run)
