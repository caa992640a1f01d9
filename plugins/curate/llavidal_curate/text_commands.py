"""``llavidal curate caption|describe|qa``: their arguments (argparse only, cheap to import) and entry functions.

Each step is per video and resumable (`llavidal_curate.step_runner`): ``OUT/<id>.json`` per video, skipped when
there; failures in ``OUT/errors.jsonl``; exit 0 all written, 3 some failed, 2 usage error. After the videos,
rank 0 writes the merged file in the original's format (captions.json, dense_descriptions.json) or the
instruction file (adlx_QAs_for_training.json).
"""

from __future__ import annotations

import argparse

CAPTION_HELP = "ADL-X step 3: caption sampled frames of each video with an image-text-to-text model"
DESCRIBE_HELP = "ADL-X step 4: a dense description per video from its captions and actions, by an LLM"
QA_HELP = "ADL-X step 5: question-answer pairs per video by an LLM, and the training instruction file"


def register_text_commands(register) -> None:
    register(("curate", "caption"), help=CAPTION_HELP, add_arguments=add_caption_arguments, run=run_caption)
    register(("curate", "describe"), help=DESCRIBE_HELP, add_arguments=add_describe_arguments, run=run_describe)
    register(("curate", "qa"), help=QA_HELP, add_arguments=add_qa_arguments, run=run_qa)


def add_caption_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Caption two frames per second of each video (the original's CogVLM step, "
                          "adlx_curation/step3_image_frame_captions.py) with any transformers image-text-to-text "
                          "model; writes OUT/<id>.json per video and OUT/captions.json ({id: [captions]}).")
    parser.add_argument("inputs", nargs="+", help="video files, folders or lists of paths (e.g. the stitched videos)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", required=True, help="image-text-to-text model: folder or Hub id")
    parser.add_argument("--device", default="auto", help="torch device (default: auto, this rank's GPU else cpu)")
    parser.add_argument("--dtype", default="auto", help="float32, float16, bfloat16 or auto (default)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per generate call (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="caption length limit (default: 256)")
    parser.add_argument("--decoder", choices=("auto", "decord", "pyav"), default="auto",
                        help="video decoder (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", required=True,
                        help="LLM: a local transformers chat model (folder or Hub id), or the model name served "
                             "at --llm-url (the paper used gpt-3.5-turbo)")
    parser.add_argument("--llm-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument("--llm-key-env", default=None, help="environment variable with the key (with --llm-url)")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0)")
    parser.add_argument("--attempts", type=int, default=3,
                        help="tries per reply until it parses (default: 3; 1 for a greedy local model)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="reply length limit (default: 1024)")
    parser.add_argument("--cache", default=None, help="reply cache file (default: OUT/llm-cache.sqlite)")
    parser.add_argument("--device", default=None, help="torch device of a local LLM (default: auto)")
    parser.add_argument("--dtype", default=None, help="dtype of a local LLM (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Ask an LLM for a dense description of each video from its frame captions and its action "
                          "sentence (adlx_curation/step4_WS_video_desc.py); writes OUT/<id>.json per video and "
                          "OUT/dense_descriptions.json ({id: {Q, A}}).")
    parser.add_argument("--captions", required=True, help="the caption step's folder, or a {id: [captions]} file")
    parser.add_argument("--action-mapping", required=True,
                        help="action_mapping.json: {id: 'Actions performed by the person in the video are ...'}")
    parser.add_argument("--out", required=True, help="output folder")
    _add_llm_arguments(parser)


def add_qa_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Ask an LLM for summary and detail question-answer pairs of each video from its "
                          "description and captions (adlx_curation/step5_QA_generation.py); writes OUT/<id>.json "
                          "per video and the instruction file llavidal train reads.")
    parser.add_argument("--captions", required=True, help="the caption step's folder, or a {id: [captions]} file")
    parser.add_argument("--descriptions", required=True,
                        help="the describe step's folder, or a {id: {Q, A}} file (dense_descriptions.json)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--cues", nargs="+", default=["video", "object", "pose"], choices=["video", "object", "pose"],
                        help="cues named in each record (default: video object pose, as the original)")
    parser.add_argument("--instructions", default=None,
                        help="instruction file to write (default: OUT/adlx_QAs_for_training.json)")
    _add_llm_arguments(parser)


def _positive(args: argparse.Namespace, *names: str) -> None:
    from llavidal_core.errors import UsageError

    for name in names:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")


def _is_rank_zero() -> bool:
    from llavidal_core.extraction import distributed_slot

    return distributed_slot()[0] == 0


def run_caption(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llavidal_core.extraction import collect_inputs, distributed_slot, index_by_video_id
    from llavidal_core.video_ids import VIDEO_EXTENSIONS
    from llavidal_curate.captions import FrameCaptioner, caption_video, merge_captions
    from llavidal_curate.step_runner import StepItem, run_steps, write_json_atomic

    _positive(args, "batch_size", "max_new_tokens")
    out = Path(args.out)
    videos = index_by_video_id(collect_inputs(args.inputs, lambda p: p.suffix.lower() in VIDEO_EXTENSIONS))
    items = [StepItem(video_id, str(path), (out / f"{video_id}.json",)) for video_id, path in videos.items()]
    loaded = []

    def process(item: StepItem) -> None:
        if not loaded:  # load the model only when some video is left to do
            loaded.append(FrameCaptioner(args.model, device=args.device, dtype=args.dtype,
                                         batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                         local_rank=distributed_slot()[2]))
        record = caption_video(loaded[0], item.source, decoder=args.decoder)
        write_json_atomic(item.outputs[0], {"video_id": item.key, **record})

    code = run_steps(items, out, process=process, description="caption", progress=not args.no_progress)
    if _is_rank_zero() and any(path.name != "captions.json" for path in out.glob("*.json")):
        merge_captions(out)
    return code


def _llm_session(args: argparse.Namespace):
    from llavidal_curate.llm_replies import open_llm_session

    _positive(args, "attempts", "max_tokens")
    return open_llm_session(args.llm, args.out, url=args.llm_url, key_env=args.llm_key_env,
                            temperature=args.temperature, device=args.device, dtype=args.dtype,
                            attempts=args.attempts, cache=args.cache)


def run_describe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llavidal_core.errors import UsageError
    from llavidal_curate.captions import read_captions
    from llavidal_curate.descriptions import describe_video, merge_descriptions, read_action_mapping
    from llavidal_curate.step_runner import StepItem, run_steps, write_json_atomic

    out = Path(args.out)
    captions = read_captions(args.captions)
    actions = read_action_mapping(args.action_mapping)
    missing = sorted(set(captions) - set(actions))
    if missing:
        raise UsageError(f"{args.action_mapping}: no action sentence for {len(missing)} captioned video(s), e.g. "
                         f"{missing[:3]}")
    items = [StepItem(video_id, video_id, (out / f"{video_id}.json",), payload=(captions[video_id], actions[video_id]))
             for video_id in captions]
    sessions = []

    def process(item: StepItem) -> None:
        if not sessions:
            sessions.append(_llm_session(args))
        record = describe_video(sessions[0], item.key, *item.payload, max_tokens=args.max_tokens)
        write_json_atomic(item.outputs[0], record)

    code = run_steps(items, out, process=process, description="describe", progress=not args.no_progress)
    if _is_rank_zero() and any(path.name != "dense_descriptions.json" for path in out.glob("*.json")):
        merge_descriptions(out)
    return code


def run_qa(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from llavidal_core.errors import UsageError
    from llavidal_curate.captions import read_captions
    from llavidal_curate.descriptions import read_descriptions
    from llavidal_curate.qa_pairs import qa_for_video, write_instruction_file
    from llavidal_curate.step_runner import StepItem, run_steps, write_json_atomic

    out = Path(args.out)
    captions = read_captions(args.captions)
    descriptions = read_descriptions(args.descriptions)
    missing = sorted(set(descriptions) - set(captions))
    if missing:
        raise UsageError(f"{args.captions}: no captions for {len(missing)} described video(s), e.g. {missing[:3]}")
    items = [StepItem(video_id, video_id, (out / f"{video_id}.json",), payload=(descriptions[video_id],
                                                                              captions[video_id]))
             for video_id in descriptions]
    sessions = []

    def process(item: StepItem) -> None:
        if not sessions:
            sessions.append(_llm_session(args))
        write_json_atomic(item.outputs[0], qa_for_video(sessions[0], item.key, *item.payload,
                                                        max_tokens=args.max_tokens))

    code = run_steps(items, out, process=process, description="qa", progress=not args.no_progress)
    if _is_rank_zero():
        path, count = write_instruction_file(out, args.cues, args.instructions)
        logging.getLogger(__name__).info("%s: %d instruction records", path, count)
    return code
