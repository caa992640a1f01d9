"""``llavidal extract video``: its arguments (argparse only, cheap to import) and its entry function."""

from __future__ import annotations

import argparse

EXTRACT_HELP = "extract video cue features (CLIP) from video files into a feature store"


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Extract the video cue's CLIP features. INPUT is a video file, a folder (searched recursively for "
        "video files) or a text file listing paths, one per line (relative ones are taken from the list's "
        "folder). Each video is written as OUT/<video_id>.safetensors (tensor 'video'), its id being its path "
        "under the folder or list it came from without the suffix (a/b/clip_1.mp4 -> OUT/a/b/clip_1.safetensors; "
        "a file given alone: its name), or as OUT/<name up to its first dot>.pkl with --format videochatgpt, "
        "as the original names them; videos already done are skipped. Videos that cannot be decoded are "
        "listed in OUT/errors.jsonl. Exit code: 0 all done, 3 some failed (the rest were written), "
        "2 usage error. Under torchrun, RANK/WORLD_SIZE split the sorted inputs between processes."
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or lists of paths")
    parser.add_argument("--out", required=True, help="output folder")
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
    parser.add_argument("--batch-size", type=int, default=48, help="frames per encoder forward pass (default: 48)")
    parser.add_argument("--workers", type=int, default=2,
                        help="DataLoader processes decoding videos ahead of the encoder; 0 decodes in the main "
                             "process (default: 2)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available; under "
                                                       "torchrun cuda:LOCAL_RANK)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="encoder precision (default: float32 on CPU, float16 on CUDA)")
    parser.add_argument("--format", choices=("safetensors", "videochatgpt"), default="safetensors",
                        help="safetensors feature store (default) or the original's <id>.pkl float16 arrays")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the encoder (default: torch's choice)")


def run_extract(args: argparse.Namespace) -> int:
    from llavidal_video.extract import run_extraction

    return run_extraction(args)
