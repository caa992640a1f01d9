"""Built-in ``llavidal ask`` and ``llavidal chat``: answer questions about a video from the command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.hookspecs import hookimpl
from llavidal_core.model_location import hub_failures_named, model_location
from llavidal_core.video_ids import is_video_path

DTYPES = ("float32", "bfloat16", "float16")


def add_model_arguments(parser: argparse.ArgumentParser, with_video: bool = True) -> None:
    parser.add_argument("model", help="llavidal model folder or Hub id")
    if with_video:
        parser.add_argument("video", nargs="?", type=Path, help="the video to ask about")
    parser.add_argument("--input", action="append", default=[], metavar="CUE=FILE",
                        help="another cue's input, e.g. --input pose=clip.skeleton (repeatable)")
    parser.add_argument("--encoder", action="append", default=[], metavar="CUE=ID",
                        help="use this encoder for a cue instead of the one the model records (repeatable)")
    if with_video:
        parser.add_argument("--features", type=Path, metavar="PATH",
                            help="precomputed features instead of computing them: a feature file "
                                 "(.safetensors, from llavidal extract) or a feature store folder, where the "
                                 "VIDEO's file name without its suffix is the id")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", choices=DTYPES, help="default: float32 on CPU, bfloat16/float16 on GPU")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, help="sample with this temperature (default: greedy)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")


def add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("question", nargs="?", help="the question")
    parser.add_argument("--dry-run", action="store_true",
                        help="load only the config and print the memory the model needs")


def pairs(values: list[str], flag: str) -> dict[str, str]:
    parsed = {}
    for value in values:
        cue, sep, target = value.partition("=")
        if not sep or not cue or not target:
            raise LlavidalError(f"{flag} {value!r}: expected CUE=VALUE")
        parsed[cue] = target
    return parsed


def settings_of(args: argparse.Namespace) -> dict:
    settings = {"max_new_tokens": args.max_new_tokens, "stop": tuple(args.stop)}
    if args.temperature is not None:
        settings.update(do_sample=True, temperature=args.temperature, top_p=args.top_p)
    return settings


def load_pipeline(args: argparse.Namespace):
    from llavidal_core.inference import LlavidalPipeline

    return LlavidalPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                            encoders=pairs(args.encoder, "--encoder"))


def sample_inputs(args: argparse.Namespace) -> dict[str, str]:
    inputs = pairs(args.input, "--input")
    if args.video is not None:
        inputs["video"] = str(args.video)
    for cue, path in inputs.items():
        if not Path(path).exists():
            raise LlavidalError(f"{path}: no such file (input of the {cue!r} cue)")
    return inputs


def precomputed_features(args: argparse.Namespace) -> dict | None:
    """The ``--features`` file's (or store entry's) tensors, each cue as ``(rows, dim)``; None without the flag."""
    from llavidal_core.features import FILE_SUFFIX, FeatureStore

    path = getattr(args, "features", None)
    if path is None:
        return None
    if path.is_dir():
        if args.video is None:
            raise LlavidalError(f"--features {path} is a feature store folder: give VIDEO too, whose name picks "
                                "the file (or give the feature file itself)")
        store, video_id = FeatureStore(path, create=False), args.video.stem
        if video_id not in store:
            raise LlavidalError(f"{store.path_for(video_id)}: no such feature file (for {args.video} in --features)")
    elif not path.exists():
        raise LlavidalError(f"{path}: no such file (--features)")
    elif path.is_file() and path.name.endswith(FILE_SUFFIX):
        store, video_id = FeatureStore(path.parent, create=False), path.name[: -len(FILE_SUFFIX)]
    else:
        raise LlavidalError(f"{path}: --features takes a .safetensors feature file or a feature store folder")
    return {cue: tensor.reshape(-1, tensor.shape[-1]) for cue, tensor in store.read_all(video_id).items()}


def features_for_model(features: dict | None, pipeline) -> dict | None:
    """``features`` restricted to the model's cues (a feature file may hold more); None stays None."""
    if features is None:
        return None
    return {cue: tensor for cue, tensor in features.items() if cue in pipeline.cue_names}


@contextmanager
def warnings_as_notes():
    """Warnings (a cue without input left out of the prompt, ...) as one ``llavidal: note:`` line each on
    stderr, instead of Python's warning format with its source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for warning in caught:
                message = str(warning.message)
                if message not in seen:
                    seen.add(message)
                    print(f"llavidal: note: {message}", file=sys.stderr)


def run_dry_run(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoConfig

    import llavidal_core.modeling  # noqa: F401 - registers the llavidal config
    from llavidal_core.inference.memory import estimate_memory
    from llavidal_core.inference.pipeline import default_device, default_dtype

    model = model_location(args.model)
    with hub_failures_named(model):
        config = AutoConfig.from_pretrained(model)
    dtype = getattr(torch, args.dtype) if args.dtype else default_dtype(args.device or default_device())
    print(f"{args.model}: cues {list(config.cue_names)}")
    print(estimate_memory(config, dtype, max_new_tokens=args.max_new_tokens).describe())
    return 0


def run_ask(args: argparse.Namespace) -> int:
    if args.dry_run:
        return run_dry_run(args)
    if args.question is None and args.video is not None and args.features is not None:
        args.question, args.video = str(args.video), None  # `ask MODEL QUESTION --features FILE`: no video
    if args.question is None:
        args.usage_parser.error("give VIDEO and the QUESTION (or the QUESTION and --features; or --dry-run)")
    if not args.question.strip():
        raise LlavidalError("the question is empty")
    model_location(args.model)  # a missing model folder is named before a missing input
    inputs = sample_inputs(args)
    features = precomputed_features(args)
    with warnings_as_notes():
        pipeline = load_pipeline(args)
        video = inputs.pop("video", None)
        answer = pipeline(video=video, inputs=inputs, features=features_for_model(features, pipeline),
                          question=args.question, stream=True, **settings_of(args))
        for piece in answer:
            print(piece, end="", flush=True)
        print()
    return 0


CHAT_HELP = "commands: /reset (forget the conversation), /video PATH (talk about another video), /quit"


def run_chat(args: argparse.Namespace) -> int:
    model_location(args.model)  # a missing model folder is named before a missing input
    inputs = sample_inputs(args)
    features = precomputed_features(args)
    with warnings_as_notes():
        pipeline = load_pipeline(args)
        video = inputs.pop("video", None)
        chat = pipeline.chat(video=video, inputs=inputs, features=features_for_model(features, pipeline))
    print(f"llavidal chat about {args.video or 'no video'} ({CHAT_HELP})", file=sys.stderr)
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            chat.reset()
            print("(conversation forgotten)", file=sys.stderr)
            continue
        if text.startswith("/video"):
            path = Path(text.removeprefix("/video").strip())
            if not path.is_file():
                print(f"llavidal: error: {path}: no such file", file=sys.stderr)
                continue
            if inputs:  # --input files belong to the first video, not to this one
                print(f"llavidal: note: the --input files ({', '.join(inputs)}) were for the first video; "
                      "they are left out from now on", file=sys.stderr)
                inputs = {}
            try:
                with warnings_as_notes():
                    chat.set_sample(video=str(path))
            except (LlavidalError, ValueError, OSError) as exc:
                print(f"llavidal: error: {exc}", file=sys.stderr)
                continue
            print(f"(now talking about {path})", file=sys.stderr)
            continue
        if text.startswith("/"):
            print(f"unknown command {text.split()[0]}; {CHAT_HELP}", file=sys.stderr)
            continue
        for piece in chat.stream(text, **settings_of(args)):
            print(piece, end="", flush=True)
        print()
    return 0


WEB_PORT, API_PORT = 7860, 8000
DEFAULT_MAX_UPLOAD_MB = 200  # for --help; VideoSources' default, which a test keeps equal


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, with_video=False)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; another address is "
                             "reachable from other machines)")
    parser.add_argument("--port", type=int, help=f"default: {WEB_PORT} (web demo), {API_PORT} (--api)")
    parser.add_argument("--examples", type=Path, metavar="DIR", help="offer the videos in DIR as examples (web demo)")
    api = parser.add_argument_group(
        "OpenAI-compatible API", "--api serves /v1/chat/completions (streaming too) and /v1/models instead of the "
        "web demo; a video is a content part {\"type\": \"video_url\", \"video_url\": {\"url\": ...}} whose URL is a "
        "path or file:// URL under --api-allowed-dir, a data:video/...;base64 upload, or an http(s) URL from "
        "--api-allowed-host. --max-new-tokens, --temperature, --top-p and --stop are the defaults of requests "
        "that do not set them.")
    api.add_argument("--api", action="store_true", help="serve the OpenAI-compatible API instead of the web demo")
    api.add_argument("--api-allowed-dir", action="append", default=[], type=Path, metavar="DIR",
                     help="clients may name video files under DIR (repeatable; default: none, local paths are "
                          "refused)")
    api.add_argument("--api-allowed-host", action="append", default=[], metavar="HOST",
                     help="download http(s) video URLs from HOST (repeatable; default: none, URLs are refused)")
    api.add_argument("--api-max-upload-mb", type=float, metavar="MB",
                     help=f"largest uploaded or downloaded video (default: {DEFAULT_MAX_UPLOAD_MB})")
    api.add_argument("--api-model-name", metavar="NAME",
                     help="the model id clients send and /v1/models lists (default: MODEL as given)")


def check_serve_options(args: argparse.Namespace) -> None:
    """Refuse options of the other mode: API options without ``--api``, ``--examples`` with it."""
    if args.api and args.examples is not None:
        raise UsageError("--examples is for the web demo; with --api clients send their own videos")
    given = [flag for flag, value in (("--api-allowed-dir", args.api_allowed_dir),
                                      ("--api-allowed-host", args.api_allowed_host),
                                      ("--api-max-upload-mb", args.api_max_upload_mb),
                                      ("--api-model-name", args.api_model_name)) if value]
    if given and not args.api:
        raise UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for the API server: add --api")
    if args.api_max_upload_mb is not None and not args.api_max_upload_mb > 0:
        raise UsageError(f"--api-max-upload-mb must be positive, got {args.api_max_upload_mb:g}")


def run_serve_api(args: argparse.Namespace) -> int:
    from llavidal_core.inference.openai_api import ApiOptions, VideoSources, serve_api
    from llavidal_core.inference.openai_api.media import MB

    limit = {} if args.api_max_upload_mb is None else {"max_upload_bytes": int(args.api_max_upload_mb * MB)}
    videos = VideoSources(allowed_dirs=args.api_allowed_dir, allowed_hosts=args.api_allowed_host, **limit)
    pipeline = load_pipeline(args)
    name = args.api_model_name or args.model
    options = ApiOptions(model_name=name, videos=videos, settings=pipeline.settings.with_overrides(**settings_of(args)))
    port = API_PORT if args.port is None else args.port
    print(f"llavidal: serving {args.model} as {name!r} at http://{args.host}:{port}/v1 (OpenAI-compatible; "
          "Ctrl+C stops)", file=sys.stderr)
    serve_api(pipeline, options, host=args.host, port=port,
              log_level="warning" if getattr(args, "cli_verbosity", 0) < 0 else "info")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    check_serve_options(args)
    if args.api:
        return run_serve_api(args)
    from llavidal_core.inference.web import serve

    args.port = WEB_PORT if args.port is None else args.port
    examples = []
    if args.examples is not None:
        if not args.examples.is_dir():
            raise LlavidalError(f"{args.examples}: no such folder of example videos")
        examples = sorted(p for p in args.examples.iterdir() if is_video_path(p))
    pipeline = load_pipeline(args)
    print(f"llavidal: serving {args.model} on http://{args.host}:{args.port} (Ctrl+C stops)", file=sys.stderr)
    serve(pipeline, host=args.host, port=args.port, examples=examples, max_new_tokens=args.max_new_tokens)
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("ask",), help="answer one question about a video", add_arguments=add_ask_arguments, run=run_ask)
    register(("chat",), help="talk about a video, turn after turn (reads questions from stdin)",
             add_arguments=add_model_arguments, run=run_chat)
    register(("serve",), help="start the web demo on localhost (--api: an OpenAI-compatible API instead)",
             add_arguments=add_serve_arguments, run=run_serve)
