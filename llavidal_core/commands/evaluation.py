"""Built-in ``llavidal eval mcq``: check an ADLMCQ file (and its videos), print its prompts, or score a model on it;
``llavidal eval describe``: score a model's video descriptions (Charades-Descriptions, TSU-Descriptions) with an
LLM judge on Video-ChatGPT's five criteria and with judge-free reference metrics; and ``llavidal card``: rewrite
a saved model's card with the results of ``eval mcq --out`` reports.

Each question's video and prompt are the ones the original's script for its file uses (`MCQuestion.video_path`,
`MCQuestion.prompt`); with ``--videos DIR`` a question's video is ``DIR/<video_path>``, as the original opens it.
The judge (``--judge``) is a transformers model run here, or any OpenAI-compatible server (``--judge-url``);
every judgement is cached (``--judge-cache``), so a rerun asks it nothing twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.hookspecs import hookimpl

DTYPES = ("float32", "bfloat16", "float16")
progress = logging.getLogger("llavidal.eval")  # what `llavidal eval` tells its user as it runs


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose and configure the LLM judge (`judge_session`)."""
    group = parser.add_argument_group("LLM judge")
    group.add_argument("--judge", metavar="MODEL",
                       help="the judge: a transformers chat model folder or Hub id run here; with --judge-url, the "
                            "model name the server knows (llama3.1 on ollama, gpt-4o-mini on OpenAI)")
    group.add_argument("--judge-url", metavar="URL",
                       help="an OpenAI-compatible API root: http://127.0.0.1:11434/v1 (ollama), "
                            "http://127.0.0.1:8000/v1 (vLLM, transformers serve), https://api.openai.com/v1")
    group.add_argument("--judge-key-env", metavar="VAR",
                       help="the environment variable holding the server's key (default OPENAI_API_KEY; local "
                            "servers need none)")
    group.add_argument("--judge-temperature", type=float, default=0.0, metavar="T", help="default 0")
    group.add_argument("--judge-attempts", type=int, default=3, metavar="N",
                       help="replies asked for per judgement until one parses (default 3; 1 for a local judge at "
                            "temperature 0, which would repeat itself); none parsing is a judge failure")
    group.add_argument("--judge-cache", type=Path, metavar="FILE",
                       help="SQLite file of every judgement (default ~/.cache/llavidal/judge-cache.sqlite)")
    group.add_argument("--judge-device", help="device of a local judge (default: --device)")
    group.add_argument("--judge-dtype", choices=DTYPES, help="dtype of a local judge (default: --dtype)")


def judge_session(args: argparse.Namespace):
    """The `JudgeSession` the judge options ask for (after the model's work: a local judge loads only now)."""
    from llavidal_core.evaluation.judge_cache import JudgeCache, default_cache_path
    from llavidal_core.evaluation.judges import make_judge
    from llavidal_core.evaluation.judging import JudgeSession

    try:
        judge = make_judge(args.judge, url=args.judge_url, key_env=args.judge_key_env,
                           temperature=args.judge_temperature, device=args.judge_device or args.device,
                           dtype=args.judge_dtype or args.dtype)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cache = JudgeCache(args.judge_cache or default_cache_path())
    progress.info("judge: %s (cache %s)", judge.identity, cache.path)
    return JudgeSession(judge, cache, attempts=args.judge_attempts)


def check_judge_arguments(args: argparse.Namespace, needed: bool) -> None:
    """Usage errors for judge options that cannot work together, found before any model is loaded."""
    if needed and not args.judge:
        args.usage_parser.error("this needs --judge MODEL")
    if not args.judge and (args.judge_url or args.judge_key_env):
        args.usage_parser.error("--judge-url / --judge-key-env go with --judge MODEL")
    if args.judge_key_env and not args.judge_url:
        args.usage_parser.error("--judge-key-env goes with --judge-url (a local judge needs no key)")
    if args.judge_attempts < 1:
        args.usage_parser.error("--judge-attempts must be at least 1")
    if args.judge_temperature < 0:
        args.usage_parser.error("--judge-temperature must be 0 or more")
    if args.judge and not args.judge_url:  # a missing local judge, found before the model's work
        from llavidal_core.model_location import model_location

        model_location(args.judge)


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
    parser.add_argument("--parser", choices=("rules", "llm"), default="rules",
                        help="with --mode generate, who reads the letter from the answer: rules (default), or llm: "
                             "the judge, as the original's mcq_parsing_llm.py ('Z' = none; needs --judge)")
    parser.add_argument("--normalize", choices=("mean", "sum"), default="mean",
                        help="option score: mean (default) or sum of its token log-probabilities")
    parser.add_argument("--limit", type=int, metavar="N", help="first N questions of each file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the report as JSON here")
    parser.add_argument("--predictions", type=Path, metavar="FILE", help="write one JSON line per question here")
    add_judge_arguments(parser)


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
    if args.parser == "llm" and args.mode != "generate":
        args.usage_parser.error("--parser llm reads generated answers: add --mode generate")
    check_judge_arguments(args, needed=args.parser == "llm")
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
    if args.parser == "llm":
        from llavidal_core.evaluation.mcq_judge_parser import parse_with_judge

        del pipeline, model, processor, features_for  # the judge may need the memory
        questions = {(q.task, q.question_id): q for f in files for q in f.questions}
        session = judge_session(args)
        evaluation = parse_with_judge(evaluation, questions, session)
    report = evaluation.report() | {"model": str(args.model), "mode": args.mode, "normalize": args.normalize,
                                    "files": [str(f.path) for f in files]}
    if args.parser == "llm":
        report |= {"judge_calls": session.judge.calls, "judge_cache_hits": session.cache_hits}
    print(report["markdown"] or "no question had features for this model's cues")
    for task, count in report["skipped_missing_features"].items():
        print(f"{task}: {count} questions skipped (no features for their video)", file=sys.stderr)
    for task, count in report.get("no_answer", {}).items():
        if count and task != "overall":
            print(f"{task}: {count} answers name no choice (no answer, counted wrong)", file=sys.stderr)
    for task, count in report.get("judge_failures", {}).items():
        if count and task != "overall":
            print(f"{task}: {count} judge replies never named a letter (judge failures, counted as no answer)",
                  file=sys.stderr)
    if args.out:
        atomic_write_bytes(args.out, json.dumps(report, indent=2).encode("utf-8"))
        if Path(args.model).is_dir() and report["accuracy"]:
            print(f"llavidal: note: to put these results in the model card: llavidal card {args.model} "
                  f"--eval {args.out}", file=sys.stderr)
    if args.predictions:
        lines = "".join(json.dumps(record) + "\n" for record in evaluation.prediction_records())
        atomic_write_bytes(args.predictions, lines.encode("utf-8"))
    return 0


def add_describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="llavidal model folder or Hub id")
    parser.add_argument("--questions", type=Path, required=True, metavar="FILE",
                        help="a Charades-Descriptions file (a JSON list of video_name, Q, A, cons_Q1, cons_Q2, "
                             "cons_A) or a TSU-Descriptions file (a JSON object of video name -> description)")
    parser.add_argument("--videos", type=Path, metavar="DIR",
                        help="the videos: <video_name>.mp4 (Charades), the one-minute clips <video_name>_*.mp4 "
                             "(TSU); features are computed with the model's own encoders")
    parser.add_argument("--features", type=Path, metavar="DIR",
                        help="or: a feature store with those videos' (clips') ids")
    parser.add_argument("--max-new-tokens", type=int, default=1024, metavar="N",
                        help="longest answer, in tokens (default 1024, the original's)")
    parser.add_argument("--limit", type=int, metavar="N", help="first N videos of the file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the report as JSON here, and its Markdown beside it (FILE with .md)")
    parser.add_argument("--predictions", type=Path, metavar="FILE",
                        help="write one JSON line per video here: the answers, TSU summaries, scores and judge "
                             "failures (default with --out: FILE.predictions.jsonl beside it)")
    add_judge_arguments(parser)


def _write_jsonl(path: Path, records) -> None:
    from llavidal_core.atomic_files import atomic_write_bytes

    atomic_write_bytes(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode())


def describe_answers(args: argparse.Namespace, described):
    """The model's `DescriptionAnswers` for ``described``, from --features or --videos; the model is freed after."""
    from llavidal_core.evaluation.description_answers import answer_descriptions
    from llavidal_core.evaluation.description_sources import FeatureFolder, VideosFolder
    from llavidal_core.features import FeatureStore
    from llavidal_core.inference import LlavidalPipeline

    folder = args.features if args.features is not None else args.videos
    if not folder.is_dir():
        raise LlavidalError(f"{folder}: no such folder")
    pipeline = LlavidalPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                                load_encoders=args.videos is not None)
    if args.features is not None:
        source = FeatureFolder(FeatureStore(args.features, create=False), pipeline.cue_names)
    else:
        source = VideosFolder(pipeline, args.videos)
        unread = [cue for cue in pipeline.cue_names if cue not in pipeline.video_cues()]
        if unread:  # descriptions without some of the model's cues must not pass for its descriptions
            progress.warning("the cues %s take no video input; they are left out of every prompt (describe with "
                             "--features to include them)", unread)
    answers = answer_descriptions(pipeline, described, source, max_new_tokens=args.max_new_tokens, limit=args.limit)
    if answers.skipped:
        progress.warning("%d videos skipped: no %s for them (first: %s)", len(answers.skipped),
                         "features" if args.features is not None else "video", ", ".join(answers.skipped[:5]))
    return answers


def describe_judgements(args: argparse.Namespace, described, predictions) -> tuple[list, object]:
    """Every prediction judged (`judge_item`), and the `JudgeSession` that judged them."""
    from tqdm.auto import tqdm

    from llavidal_core.evaluation.description_scores import judge_item

    session = judge_session(args)
    items = {item.item_id: item for item in described.items}
    judged = [judge_item(session, items[p.item_id], p, described.protocol)
              for p in tqdm(predictions, desc="judging", unit="video", disable=None)]
    progress.info("judge calls: %d, judgements from the cache: %d", session.judge.calls, session.cache_hits)
    return judged, session


def run_describe(args: argparse.Namespace) -> int:
    if (args.features is None) == (args.videos is None):
        args.usage_parser.error("give one of --features DIR / --videos DIR")
    if args.max_new_tokens < 1:
        args.usage_parser.error("--max-new-tokens must be positive")
    if args.out is not None and args.out.suffix == ".md":
        args.usage_parser.error("--out is the JSON report (its Markdown goes beside it, with .md)")
    check_judge_arguments(args, needed=False)
    from llavidal_core.atomic_files import atomic_write_bytes
    from llavidal_core.evaluation.description_files import load_description_file
    from llavidal_core.evaluation.description_report import description_report

    described = load_description_file(args.questions)
    predictions_path = args.predictions or (args.out.with_suffix(".predictions.jsonl") if args.out else None)
    answers = describe_answers(args, described)
    if predictions_path:  # the model's answers are kept even if judging stops half-way
        _write_jsonl(predictions_path, [p.to_record() for p in answers.predictions])
    judged, session = describe_judgements(args, described, answers.predictions) if args.judge else (None, None)
    report = description_report(described.protocol, described.items, answers.predictions, judged, answers.skipped,
                                session.judge.identity if session else None)
    report |= {"model": str(args.model), "questions": str(args.questions), "max_new_tokens": args.max_new_tokens}
    if session is not None:
        report |= {"judge_calls": session.judge.calls, "judge_cache_hits": session.cache_hits,
                   "judge_cache": str(session.cache.path)}
        for criterion, entry in report["criteria"].items():
            if entry.get("judge_failures"):
                progress.warning("%s: %d judge failures (no parsable reply; left out of the mean)", criterion,
                                 entry["judge_failures"])
    print(report["markdown"])
    if args.out:
        atomic_write_bytes(args.out, json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
        atomic_write_bytes(args.out.with_suffix(".md"), (report["markdown"] + "\n").encode("utf-8"))
    if predictions_path and judged is not None:
        _write_jsonl(predictions_path, [p.to_record() | j.to_record() for p, j in zip(answers.predictions, judged)])
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
    register(("eval", "describe"), help="score a model's video descriptions (Charades-, TSU-Descriptions) with an "
                                        "LLM judge on Video-ChatGPT's five criteria, and reference metrics",
             add_arguments=add_describe_arguments, run=run_describe)
    register(("card",), help="rewrite a saved model's card: evaluation results (eval mcq --out), license, datasets",
             add_arguments=add_card_arguments, run=run_card)
