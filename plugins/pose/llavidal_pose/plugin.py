"""The entry point of llavidal-pose: registers the ``pose`` cue and the ``extract pose``, ``pose train``,
``pose classify`` and ``pose manifest`` commands.

This module is imported by ``llavidal plugins``, so it imports neither torch nor numpy: the commands import
their modules when they run.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from llavidal_core.errors import LlavidalError
from llavidal_core.hookspecs import hookimpl
from llavidal_pose import POSE, __version__

ENCODER_PATH = "llavidal_pose.encoder:PoseCueEncoder"
USAGE_EXIT_CODE = 2


@hookimpl
def llavidal_register_cues(register):
    register(dataclasses.replace(POSE, version=__version__), encoder=ENCODER_PATH)


def _usage_error(message: str) -> int:
    print(f"llavidal: error: {message}", file=sys.stderr)
    return USAGE_EXIT_CODE


# -- llavidal extract pose ------------------------------------------------------------------------------


def add_extract_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="skeleton files (.skeleton, .npy, .npz), folders of them, or text files listing paths")
    parser.add_argument("--out", required=True, metavar="DIR", help="feature store folder (created if missing)")
    parser.add_argument("--model", required=True, metavar="ID_OR_DIR",
                        help="a trained PoseCLIP folder or Hub id, or 'random' for untrained weights")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="compute and storage dtype (default: float32)")
    parser.add_argument("--batch-size", type=int, default=8, help="recordings per forward pass (default: 8)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes reading and preparing skeleton files (default: 0, in the main process)")


def run_extract(args) -> int:
    from llavidal_core.extraction import ExtractionUsageError
    from llavidal_pose.extraction import extract

    try:
        return extract(args.inputs, args.out, args.model, device=args.device, dtype=args.dtype,
                       batch_size=args.batch_size, workers=args.workers)
    except ExtractionUsageError as exc:
        return _usage_error(str(exc))


# -- llavidal pose train ----------------------------------------------------------------------------------


def add_train_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="a PoseCLIP recipe, e.g. recipes/poseclip-synthetic.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides such as training.steps=500 or output_dir=runs/try")


def run_train(args) -> int:
    from llavidal_pose.training import ConfigError, load_config, train_poseclip

    try:
        config = load_config(args.config, args.overrides)
        result = train_poseclip(config, log=lambda line: print(line, file=sys.stderr))
    except ConfigError as exc:
        return _usage_error(str(exc))
    print(json.dumps({"output_dir": str(result.output_dir), "eval_zero_shot_accuracy": result.eval_accuracy,
                      "final_loss": result.losses[-1][1] if result.losses else None}))
    return 0


# -- llavidal pose classify -------------------------------------------------------------------------------


def add_classify_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="skeleton files, folders or path lists")
    parser.add_argument("--model", required=True, metavar="DIR", help="a PoseCLIP folder (from `llavidal pose train`)")
    parser.add_argument("--actions", metavar="A,B,...",
                        help="comma-separated action names to choose from (default: the training actions)")
    parser.add_argument("--prompt-template", help="prompt template with {action} (default: the training one)")
    parser.add_argument("--top", type=int, default=3, help="how many scored actions to print per input (default: 3)")


def run_classify(args) -> int:
    from llavidal_core.extraction import ExtractionUsageError
    from llavidal_pose.extraction import collect_skeletons
    from llavidal_pose.zero_shot import PoseCLIP

    try:
        paths = [found.path for found in collect_skeletons(args.inputs)]
    except ExtractionUsageError as exc:
        return _usage_error(str(exc))
    if not paths:
        return _usage_error("no skeleton files (.skeleton, .npy, .npz) in the inputs")
    model = PoseCLIP.from_pretrained(args.model)
    actions = [a.strip() for a in args.actions.split(",") if a.strip()] if args.actions else model.info.actions
    failed = 0
    for path in paths:
        try:
            probabilities = model.classify([path], actions, args.prompt_template)[0]
        except LlavidalError as exc:
            print(f"llavidal: {exc}", file=sys.stderr)
            failed += 1
            continue
        ranked = sorted(zip(actions, probabilities.tolist()), key=lambda pair: -pair[1])[: max(args.top, 1)]
        print(json.dumps({"path": str(path), "action": ranked[0][0],
                          "scores": {action: round(p, 4) for action, p in ranked}}))
    return 3 if failed else 0


# -- llavidal pose manifest -------------------------------------------------------------------------------


def add_manifest_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="NTU skeleton files, folders or path lists")
    parser.add_argument("--actions", required=True, metavar="NAMES.txt",
                        help="action names, one per line: line n names action n (A00n)")
    parser.add_argument("--split", required=True, choices=("xsub", "xset", "xview"),
                        help="cross-subject, cross-setup (NTU 120) or cross-view (NTU 60)")
    parser.add_argument("--skip", metavar="LIST.txt",
                        help="sample names to leave out, one per line (e.g. NTU's samples_with_missing_skeletons)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where train.jsonl and eval.jsonl go")


def run_manifest(args) -> int:
    from pathlib import Path

    from llavidal_core.extraction import ExtractionUsageError
    from llavidal_pose.extraction import collect_skeletons
    from llavidal_pose.ntu import read_name_list, write_manifests

    try:
        paths = [found.path for found in collect_skeletons(args.inputs)]
        if not paths:
            raise ExtractionUsageError("no skeleton files (.skeleton, .npy, .npz) in the inputs")
        skip = frozenset(read_name_list(args.skip)) if args.skip else frozenset()
        counts = write_manifests(paths, read_name_list(args.actions), args.split, args.out, skip)
    except (LlavidalError, OSError) as exc:
        return _usage_error(str(exc))
    print(json.dumps({"out": str(Path(args.out)), **counts}))
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("extract", "pose"), help="compute pose features of skeleton files into a feature store",
             add_arguments=add_extract_arguments, run=run_extract)
    register(("pose", "train"), help="train a PoseCLIP (skeleton encoder aligned with CLIP text) from a recipe",
             add_arguments=add_train_arguments, run=run_train)
    register(("pose", "manifest"), help="write PoseCLIP training manifests for NTU RGB+D skeletons by a standard split",
             add_arguments=add_manifest_arguments, run=run_manifest)
    register(("pose", "classify"), help="zero-shot action classification of skeleton files with a PoseCLIP",
             add_arguments=add_classify_arguments, run=run_classify)
