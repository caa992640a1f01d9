"""``llavidal extract video``: its arguments (argparse only, cheap to import) and its entry function."""

from __future__ import annotations

import argparse

EXTRACT_HELP = "extract video cue features (CLIP) from video files into a feature store"


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    from llavidal_core.commands.extraction import ENGINE_DESCRIPTION, add_extraction_arguments

    parser.description = (
        "Extract the video cue's CLIP features (tensor 'video' of each OUT/<id>.safetensors; with --format "
        f"videochatgpt the original's OUT/<name up to its first dot>.pkl). {ENGINE_DESCRIPTION}"
    )
    add_extraction_arguments(parser, workers=2, batch_size=1, inputs_help="video files, folders or lists of paths",
                             formats=True)
    parser.add_argument("--model", default="openai/clip-vit-large-patch14",
                        help="CLIP vision tower: transformers folder or Hub id, or open_clip:<name> "
                             "(default: %(default)s)")
    parser.add_argument("--pretrained", default=None,
                        help="open_clip pretrained tag or checkpoint file (with --model open_clip:<name>)")
    parser.add_argument("--layer", type=int, default=-2, help="feature layer, hidden_states numbering (default: -2)")
    parser.add_argument("--num-frames", type=int, default=100, help="frames per video (default: 100)")
    parser.add_argument("--sampling", choices=("segments", "uniform", "fps"), default="segments",
                        help="frame sampling: the original's segment midpoints (default), uniform, or by --fps")
    parser.add_argument("--fps", type=float, default=1.0, help="frames per second with --sampling fps")
    parser.add_argument("--pool", choices=("videochatgpt", "none", "spatial"), default="videochatgpt",
                        help="pooling (default: videochatgpt, the original's 100 + patches rows)")
    parser.add_argument("--pool-stride", type=int, default=2, help="grid stride for --pool spatial")
    parser.add_argument("--preprocess", choices=("fast", "reference"), default="fast",
                        help="fast: batched uint8 tensors on the device; reference: the original's decord + PIL "
                             "path, float16 before the means (default: fast)")
    parser.add_argument("--decoder", choices=("auto", "decord", "pyav"), default="auto",
                        help="video decoder (default: auto = decord, then PyAV)")
    parser.add_argument("--frame-batch-size", type=int, default=48,
                        help="frames per tower forward pass, across the videos of a batch (default: 48)")


def _check_arguments(args: argparse.Namespace) -> None:
    from llavidal_core.errors import UsageError

    for name in ("num_frames", "frame_batch_size", "pool_stride"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.sampling == "fps" and not 0 < args.fps < float("inf"):
        raise UsageError("--fps must be a positive number")
    if args.preprocess == "reference" and args.decoder == "pyav":
        raise UsageError("--preprocess reference decodes with decord, as the original; drop --decoder pyav")
    if args.pretrained is not None and not args.model.startswith("open_clip:"):
        raise UsageError("--pretrained is for open_clip towers (--model open_clip:<name>)")


def run_extract(args: argparse.Namespace) -> int:
    from llavidal_core.commands.extraction import run_extract_command
    from llavidal_core.video_ids import VIDEO_EXTENSIONS

    _check_arguments(args)

    def build(device, dtype):
        from llavidal_video.encoder import VideoCueEncoder

        return VideoCueEncoder.from_pretrained(
            args.model, layer=args.layer, pretrained=args.pretrained, dtype=dtype, num_frames=args.num_frames,
            sampling=args.sampling, sampling_fps=args.fps, pool=args.pool, pool_stride=args.pool_stride,
            preprocess=args.preprocess, decoder=args.decoder, frame_batch_size=args.frame_batch_size,
        ).to(device)

    return run_extract_command(args, "video", build, sorted(VIDEO_EXTENSIONS))
