"""Built-in ``llavidal eval mcq``: check an ADLMCQ file (and its videos), print its prompts, or score a model on it;
and ``llavidal card``: rewrite a saved model's card with the results of ``eval mcq --out`` reports.

Each question's video and prompt are the ones the original's script for its file uses (`MCQuestion.video_path`,
`MCQuestion.prompt`); with ``--videos DIR`` a question's video is ``DIR/<video_path>``, as the original opens it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.hookspecs import hookimpl

DTYPES = ("float32", "bfloat16", "float16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="llavidal model folder or Hub id (not needed with --check)")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="only validate a questions file and print a JSON summary (no model); with --videos, "
                             "also how many of its videos exist there")
    parser.add_argument("--prompts", action="store_true",
                        help="with --check: print each question as a JSON line (video path, video id, the prompt "
                             "the original asks, the full chat prompt, the answer) instead of the summary")
    parser.add_argument("--questions", type=Path, nargs="+", metavar="FILE", help="ADLMCQ files, any schema")
    parser.add_argument("--features", type=Path, metavar="DIR", help="feature store with the questions' videos")
    parser.add_argument("--videos", type=Path, metavar="DIR",
                        help="or: the videos folder the original's --video_dir names (each question's video is "
                             "DIR/<its video path>); video features are computed with the model's own encoder")
    parser.add_argument("--mode", choices=("loglik", "generate"), default="loglik",
                        help="loglik: best option by log-likelihood (default); generate: greedy answer + rules")
    parser.add_argument("--normalize", choices=("mean", "sum"), default="mean",
                        help="option score: mean (default) or sum of its token log-probabilities")
    parser.add_argument("--limit", type=int, metavar="N", help="first N questions of each file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the report as JSON here")
    parser.add_argument("--predictions", type=Path, metavar="FILE", help="write one JSON line per question here")


FIRST_MISSING = 20


def question_videos(files, folder: Path) -> dict[str, Path]:
    """``{video_id: folder/video_path}`` for the questions of ``files`` whose video exists there.

    Two questions whose video paths differ but give one id are an error naming both.
    """
    from llavidal_core.errors import LlavidalError

    found: dict[str, Path] = {}
    for loaded in files:
        for question in loaded.questions:
            path = folder / question.video_path
            known = found.get(question.video_id)
            if known is not None and known != path:
                raise LlavidalError(f"{loaded.path}: questions name {known} and {path}, which share the video id "
                                    f"{question.video_id!r}")
            if known is None and path.is_file():
                found[question.video_id] = path
    return found


def check_summary(loaded, videos: Path | None) -> dict:
    """``loaded.summary()``, and with ``videos`` how many distinct question videos exist there, the first missing."""
    summary = loaded.summary()
    if videos is None:
        return summary
    paths = list(dict.fromkeys(question.video_path for question in loaded.questions))
    missing = [path for path in paths if not (videos / path).is_file()]
    return summary | {"videos_folder": str(videos), "num_videos": len(paths), "videos_found": len(paths) - len(missing),
                      "videos_missing": len(missing), "first_missing": missing[:FIRST_MISSING]}


def prompt_records(loaded) -> list[dict]:
    """One record per question: where its video is, its id, the prompt as the original asks it, the chat prompt."""
    from llavidal_core.templates import LLAVIDAL_V1

    return [{"question_id": q.question_id, "task": q.task, "video_path": q.video_path, "video_id": q.video_id,
             "prompt": q.prompt,
             "chat_prompt": LLAVIDAL_V1.render([{"from": "human", "value": f"{q.prompt}\n<video>"}],
                                               add_generation_prompt=True),
             "choices": q.choices, "answer": q.answer} for q in loaded.questions]


def run_check(path: Path, videos: Path | None, prompts: bool) -> int:
    from llavidal_core.evaluation.mcq_files import MCQFormatError, load_mcq_file

    try:
        loaded = load_mcq_file(path)
    except MCQFormatError as exc:  # the file given to --check is what is checked: a broken one is the answer
        raise UsageError(str(exc)) from exc
    if videos is not None and not videos.is_dir():
        raise UsageError(f"{videos}: no such videos folder")
    if prompts:
        from llavidal_core.stdout_lines import print_lines

        print_lines(json.dumps(record) for record in prompt_records(loaded))
    else:
        print(json.dumps(check_summary(loaded, videos), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        return run_check(args.check, args.videos, args.prompts)
    if args.prompts:
        args.usage_parser.error("--prompts goes with --check FILE")
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
        features_for = features_from_videos(pipeline, question_videos(files, args.videos))
        unread = [cue for cue in pipeline.cue_names if cue not in pipeline.video_cues()]
        if unread:  # a score without some of the model's cues must not pass for its score
            print(f"llavidal: note: the cues {unread} take no video input; they are left out of every prompt "
                  "(score with --features to include them)", file=sys.stderr)
    evaluation = evaluate_mcq(model, processor, files, features_for, mode=args.mode, normalize=args.normalize,
                              limit=args.limit)
    report = evaluation.report() | {"model": str(args.model), "mode": args.mode, "normalize": args.normalize,
                                    "files": [str(f.path) for f in files]}
    print(report["markdown"] or "no question had features for this model's cues")
    for task, count in report["skipped_missing_features"].items():
        print(f"{task}: {count} questions skipped (no features for their video)", file=sys.stderr)
    for task, count in report.get("no_answer", {}).items():
        if count and task != "overall":
            print(f"{task}: {count} answers name no choice (no answer, counted wrong)", file=sys.stderr)
    if args.out:
        atomic_write_bytes(args.out, json.dumps(report, indent=2).encode("utf-8"))
        if Path(args.model).is_dir() and report["accuracy"]:
            print(f"llavidal: note: to put these results in the model card: llavidal card {args.model} "
                  f"--eval {args.out}", file=sys.stderr)
    if args.predictions:
        lines = "".join(json.dumps(record) + "\n" for record in evaluation.prediction_records())
        atomic_write_bytes(args.predictions, lines.encode("utf-8"))
    return 0


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a saved llavidal model (or adapter) folder: its README.md is "
                                                 "rewritten from its config.json")
    parser.add_argument("--eval", dest="reports", type=Path, nargs="+", default=[], metavar="REPORT",
                        help="`llavidal eval mcq --out` reports: the accuracy on each questions file goes into the "
                             "card's model-index (replacing an earlier result of that file and scoring)")
    parser.add_argument("--license", help="a Hub license id (apache-2.0, llama2, other, ...); default: the one the "
                                          "card records, else the one the base LM's card states, else none")
    parser.add_argument("--dataset", dest="datasets", action="append", metavar="ID",
                        help="a Hub dataset id the model was trained on (repeatable; replaces the recorded ones)")
    parser.add_argument("--eval-dataset", action="append", default=[], metavar="TASK=ID",
                        help="the Hub dataset id of a questions file (TASK: its name without .json) for the "
                             "model-index (default: the name itself)")
    parser.add_argument("--repo-id", help="the Hub repo the card is for, used in its title and examples "
                                          "(default: the one the card records)")


def run_card(args: argparse.Namespace) -> int:
    from huggingface_hub import ModelCard

    from llavidal_core.hub import update_model_card

    if not args.model.is_dir():
        raise UsageError(f"{args.model}: no such model folder (llavidal card rewrites a local folder's README.md; "
                         "download a Hub model first)")
    dataset_types = {}
    for value in args.eval_dataset:
        task, separator, dataset = value.partition("=")
        if not separator or not task or not dataset:
            raise UsageError(f"--eval-dataset {value!r}: expected TASK=ID")
        dataset_types[task] = dataset
    path = update_model_card(args.model, repo_id=args.repo_id, license=args.license, datasets=args.datasets,
                             eval_reports=args.reports, dataset_types=dataset_types)
    data = ModelCard.load(path).data
    results = ", ".join(f"{r.dataset_name} {r.metric_value:.3f}" for r in data.eval_results or ()) or "none"
    print(f"{path}: model card written (license: {data.license or 'none'}; base_model: "
          f"{data.base_model or 'left out (not a Hub id)'}; datasets: {', '.join(data.datasets or ()) or 'none'}; "
          f"results: {results})")
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("eval", "mcq"), help="score a model on ADLMCQ files (deterministic log-likelihood by default)",
             add_arguments=add_arguments, run=run)
    register(("card",), help="rewrite a saved model's card: evaluation results (eval mcq --out), license, datasets",
             add_arguments=add_card_arguments, run=run_card)
