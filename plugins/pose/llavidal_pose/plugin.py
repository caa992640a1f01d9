"""The entry point of llavidal-pose: registers the ``pose`` cue and the ``extract pose``, ``pose train``,
``pose classify`` and ``pose manifest`` commands.

This module is imported by ``llavidal plugins``, so it imports neither torch nor numpy: the commands import
their modules when they run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.hookspecs import hookimpl
from llavidal_pose import POSE, __version__

ENCODER_PATH = "llavidal_pose.encoder:PoseCueEncoder"
CUE_NAME = "pose"


@hookimpl
def llavidal_register_cues(register):
    register(dataclasses.replace(POSE, version=__version__), encoder=ENCODER_PATH)


# -- llavidal extract pose ------------------------------------------------------------------------------


def add_extract_arguments(parser) -> None:
    from llavidal_core.commands.extraction import ENGINE_DESCRIPTION, add_extraction_arguments

    parser.description = f"Compute the pose cue's features (tensor 'pose') of skeleton files. {ENGINE_DESCRIPTION}"
    add_extraction_arguments(parser, workers=0, batch_size=8,
                             inputs_help="skeleton files (.skeleton, .npy, .npz), folders of them, or text files "
                                         "listing paths")
    parser.add_argument("--model", required=True, metavar="ID_OR_DIR",
                        help="a trained PoseCLIP folder or Hub id, or 'random' for untrained weights")


def run_extract(args) -> int:
    from llavidal_core.commands.extraction import run_extract_command
    from llavidal_pose.extraction import SKELETON_SUFFIXES, load_extraction_encoder

    return run_extract_command(args, CUE_NAME, lambda device, dtype: load_extraction_encoder(args.model, device, dtype),
                               SKELETON_SUFFIXES)


# -- llavidal pose train ----------------------------------------------------------------------------------


def add_train_arguments(parser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="a PoseCLIP recipe, e.g. recipes/poseclip-synthetic.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides such as training.steps=500 or output_dir=runs/try")


def run_train(args) -> int:
    from llavidal_pose.training import load_config, train_poseclip

    config = load_config(args.config, args.overrides)  # a ConfigError is a UsageError: exit code 2
    result = train_poseclip(config, log=logging.getLogger("llavidal.pose").info)
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
    from llavidal_pose.extraction import collect_skeletons
    from llavidal_pose.zero_shot import PoseCLIP

    paths = [found.path for found in collect_skeletons(args.inputs)]  # a missing input is a UsageError
    if not paths:
        raise UsageError("no skeleton files (.skeleton, .npy, .npz) in the inputs")
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

    from llavidal_pose.extraction import collect_skeletons
    from llavidal_pose.ntu import read_name_list, write_manifests

    try:
        paths = [found.path for found in collect_skeletons(args.inputs)]
        if not paths:
            raise UsageError("no skeleton files (.skeleton, .npy, .npz) in the inputs")
        skip = frozenset(read_name_list(args.skip)) if args.skip else frozenset()
        counts = write_manifests(paths, read_name_list(args.actions), args.split, args.out, skip)
    except UsageError:
        raise
    except (LlavidalError, OSError) as exc:  # the lists and the folder the command line names: usage, as before
        raise UsageError(str(exc)) from exc
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
