"""Video feature extraction, timed three ways in one process on the same videos and the same random CLIP:

(a) a faithful copy of the original pipeline (Video-ChatGPT / LLAVIDAL save_spatio_temporal_clip_features.py):
    serial, decord full-resolution decode, float nearest resize, PIL + transformers' PIL CLIP processor, the
    whole tower with all hidden states, 48 frames per forward, numpy pooling, one pickle per video;
(b) ours: ``llavidal extract video`` (the core's engine: DataLoader decode workers, uint8 resize, table-lookup
    normalisation, the tower cut at layer -2);
(c) the floor: our encoder's forward pass alone on frames decoded beforehand;

each at every ``--dtypes`` precision, so every ratio compares like with like. Prints videos/s for each and the
ratios b/a and b/c at each precision. Then one traced run of (b) with ``--trace-workers`` decode workers shows,
from the engine's ``--trace``, when each video was decoded (by which process) and encoded: the decode of video
k+1 overlaps the encoding of video k. With ``--repeats N`` the pipelines run in N interleaved
rounds and the best time of each counts (robust to other load on a shared machine). ``--whole-command`` also
times (a) and (b) as whole commands in fresh processes, start-up included. The CLIP is ViT-B/16-sized (224²,
patch 16, width 768, 12 blocks) with random weights, so no download is needed.

    python benchmarks/bench_video_extract.py                       # the shared real videos, 100 frames
    python benchmarks/bench_video_extract.py --whole-command --repeats 3
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from llavidal_video.testing.videos import SHARED_DATA_VIDEOS

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEFAULT_VIDEOS = [SHARED_VIDEOS / name for name in SHARED_DATA_VIDEOS]
VIT_B_16 = dict(image_size=224, patch_size=16, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12)


# -- (a) the original pipeline, as in the original script ---------------------------------------------------

def run_original(video_paths, clip_dir, out_dir, num_frames=100, infer_batch=48, dtype="float32"):
    from llavidal_video.testing.original_pipeline import load_original_models, original_extraction

    image_processor, vision_tower = load_original_models(clip_dir, getattr(torch, dtype))
    os.makedirs(out_dir, exist_ok=True)
    for video_path in video_paths:
        pooled, _ = original_extraction(video_path, image_processor, vision_tower, num_frames, infer_batch)
        with open(f"{out_dir}/{Path(video_path).name.split('.')[0]}.pkl", "wb") as handle:
            pickle.dump(pooled, handle)


# -- (b) ours, (c) the floor ----------------------------------------------------------------------------------

def extract_args(video_paths, clip_dir, out_dir, num_frames, dtype, workers, trace=None):
    return ["extract", "video", *map(str, video_paths), "--out", str(out_dir), "--model", str(clip_dir),
            "--num-frames", str(num_frames), "--dtype", dtype, "--workers", str(workers), "--device", "cpu",
            *(["--trace", str(trace)] if trace else [])]


def run_ours(video_paths, clip_dir, out_dir, num_frames, dtype, workers, trace=None):
    from llavidal_core.cli import main

    os.environ["LLAVIDAL_LOAD_PLUGINS"] = "llavidal-video"
    code = main(extract_args(video_paths, clip_dir, out_dir, num_frames, dtype, workers, trace))
    if code != 0:
        raise SystemExit(f"llavidal extract video exited with {code}")


def floor_seconds(video_paths, clip_dir, num_frames, dtype):
    from llavidal_video.encoder import VideoCueEncoder

    encoder = VideoCueEncoder.from_pretrained(clip_dir, num_frames=num_frames, dtype=dtype)
    source = encoder.frame_source()
    decoded = [source(path).frames for path in video_paths]
    encoder.encode_frames(decoded[-1][:2])  # warm-up
    start = time.perf_counter()
    for frames in decoded:
        encoder.encode_frames(frames)
    return time.perf_counter() - start


def print_trace(trace_path: Path) -> None:
    """The engine's trace as a table (seconds from the first step), and whether each decode after the first
    ran while the encoder worked on the video before it."""
    import json

    steps = [json.loads(line) for line in trace_path.read_text().splitlines()]
    zero = min(step["start"] for step in steps)
    prepares = {step["id"]: step for step in steps if step["step"] == "prepare"}
    forwards = [step for step in steps if step["step"] == "forward"]
    main_pid = forwards[0]["pid"]
    print(f"{'video':28s} {'decoded (s)':>16s} {'by':>8s} {'encoded (s)':>16s}")
    for forward in forwards:
        prepare = prepares[forward["id"]]
        who = "main" if prepare["pid"] == main_pid else f"pid {prepare['pid']}"
        print(f"{forward['id'][:28]:28s} {prepare['start'] - zero:7.2f}-{prepare['end'] - zero:<7.2f} {who:>8s} "
              f"{forward['start'] - zero:7.2f}-{forward['end'] - zero:<7.2f}")
    busy = [(forward["start"], forward["end"]) for forward in forwards]
    for before, after in zip(forwards, forwards[1:]):
        decode = prepares[after["id"]]
        during = sum(max(0.0, min(decode["end"], end) - max(decode["start"], start)) for start, end in busy)
        waited = max(0.0, decode["end"] - before["end"])
        print(f"{after['id']}: decoded in {decode['end'] - decode['start']:.2f} s, "
              f"{during / max(decode['end'] - decode['start'], 1e-9):.0%} of it while the encoder worked; "
              f"the encoder waited {waited:.2f} s for it after {before['id']}")


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def command_seconds(command):
    env = dict(os.environ, LLAVIDAL_LOAD_PLUGINS="llavidal-video")
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--frames", type=int, default=100, help="frames per video (default: 100)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], help="precisions for (b) and (c)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader decode workers for (b)")
    parser.add_argument("--trace-workers", type=int, default=2,
                        help="decode workers of the traced run of (b) (default: 2; 0 skips the trace)")
    parser.add_argument("--whole-command", action="store_true", help="also time (a) and (b) as fresh processes")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved rounds; the best time of each pipeline is reported (default: 1)")
    parser.add_argument("--original-only", nargs=2, metavar=("CLIP_DIR", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.original_only:  # the whole-command run of (a)
        run_original(args.videos, args.original_only[0], args.original_only[1], args.frames)
        return 0

    from transformers import CLIPVisionConfig, CLIPVisionModel

    videos = [str(path) for path in args.videos]
    llavidal = str(Path(sys.executable).parent / "llavidal")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        torch.manual_seed(0)
        CLIPVisionModel(CLIPVisionConfig(**VIT_B_16)).save_pretrained(scratch / "clip")
        clip_dir = scratch / "clip"
        print(f"{len(videos)} videos, {args.frames} frames, ViT-B/16-sized random CLIP, torch threads "
              f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, {args.repeats} interleaved rounds", flush=True)

        def pipelines(round_dir):
            for dtype in args.dtypes:
                yield f"(a) original, {dtype}", lambda dtype=dtype: timed(
                    run_original, videos, clip_dir, round_dir / f"a-{dtype}", args.frames, 48, dtype)
                yield f"(b) ours, {dtype}", lambda dtype=dtype: timed(
                    run_ours, videos, clip_dir, round_dir / f"b-{dtype}", args.frames, dtype, args.workers)
                yield f"(c) floor, {dtype}", lambda dtype=dtype: floor_seconds(videos, clip_dir, args.frames, dtype)
            if args.whole_command:
                yield "(a) original, whole command", lambda: command_seconds(
                    [sys.executable, __file__, *videos, "--frames", str(args.frames), "--original-only",
                     str(clip_dir), str(round_dir / "a-cmd")])
                for dtype in args.dtypes:
                    yield f"(b) ours, {dtype}, whole command", lambda dtype=dtype: command_seconds(
                        [llavidal, *extract_args(videos, clip_dir, round_dir / f"b-cmd-{dtype}", args.frames,
                                                 dtype, args.workers)])

        times: dict[str, list[float]] = {}
        for round_index in range(args.repeats):
            for name, run in pipelines(scratch / f"round{round_index}"):
                seconds = run()
                times.setdefault(name, []).append(seconds)
                print(f"round {round_index + 1}: {name:36s} {seconds:9.2f} s", flush=True)
        if args.trace_workers:
            trace = scratch / "trace.jsonl"
            run_ours(videos, clip_dir, scratch / "traced", args.frames, args.dtypes[0], args.trace_workers, trace)
            print(f"\ntrace of (b), {args.dtypes[0]}, {args.trace_workers} decode workers:")
            print_trace(trace)

    best = {name: min(values) for name, values in times.items()}
    print(f"\n{'pipeline (best of ' + str(args.repeats) + ')':36s} {'seconds':>9s} {'videos/s':>9s} {'median s':>9s}")
    for name, values in times.items():
        print(f"{name:36s} {best[name]:9.2f} {len(videos) / best[name]:9.4f} {float(np.median(values)):9.2f}")
    print()
    for dtype in args.dtypes:
        original, ours, floor = best[f"(a) original, {dtype}"], best[f"(b) ours, {dtype}"], best[f"(c) floor, {dtype}"]
        print(f"{dtype:9s}: (b) is {original / ours:.2f}x faster than (a) at the same precision; "
              f"(b) takes {ours / floor:.2f}x the floor (c)")
        if args.whole_command:
            whole = best[f"(b) ours, {dtype}, whole command"]
            print(f"{dtype:9s}: whole commands: (b) is {best['(a) original, whole command'] / whole:.2f}x faster "
                  "than (a) in float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
