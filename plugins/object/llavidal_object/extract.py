"""The work of ``llavidal extract object``: inputs → sharded, resumable object-cue extraction.

It behaves as every ``llavidal extract`` command (`llavidal_core.extraction`), with llavidal-video's input
filter for video files (`collect_videos`): expand the inputs
into a sorted list of videos, refuse two videos with one id, keep this process's shard, drop the videos whose
file already holds the ``object`` cue, then run the chain video by video. Each result is written atomically
to the feature store as soon as it exists (tensor ``object`` of shape ``(n, 8, D)``; tags, trajectories and
the models used in its metadata). Videos that cannot be decoded go to ``OUT/errors.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from llavidal_core.errors import LlavidalError
from llavidal_core.extraction import (
    EXIT_OK,
    ExitAgreement,
    ExtractionUsageError,
    choose_device,
    distributed_slot,
    has_cue,
    index_by_video_id,
    prepare_output_folder,
    record_failure,
    report_summary,
    run_reporting_usage_errors,
    shard_for_rank,
)
from llavidal_core.features import FeatureStore
from llavidal_object.encoder import ObjectCueEncoder
from llavidal_object.pipeline import options_metadata
from llavidal_object.tags import split_user_tags
from llavidal_video.decoding import VideoDecodeError
from llavidal_video.extract import collect_videos

CUE = "object"


def _check_arguments(args: argparse.Namespace) -> tuple[list[str] | None, list[str]]:
    """``(tags, stop_words)`` from the command line; bad numbers or empty --tags are usage errors."""
    for name in ("num_frames", "keyframes", "max_tags", "min_track_length", "batch_size"):
        if getattr(args, name) <= 0:
            raise ExtractionUsageError(f"--{name.replace('_', '-')} must be positive")
    if args.max_objects < 0 or args.max_gap < 0:
        raise ExtractionUsageError("--max-objects and --max-gap must be 0 or more")
    for name in ("score_threshold", "nms_iou", "track_iou"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ExtractionUsageError(f"--{name.replace('_', '-')} must be within [0, 1]")
    stop_words = [w for w in args.stop_words.split(",") if w.strip()]
    if args.tags is None:
        return None, stop_words
    try:
        return split_user_tags(args.tags, stop_words), stop_words
    except ValueError as exc:
        raise ExtractionUsageError(f"--tags: {exc}") from exc


def run_extraction(args: argparse.Namespace) -> int:
    return run_reporting_usage_errors(_run, args)


def _run(args: argparse.Namespace) -> int:
    tags, stop_words = _check_arguments(args)
    rank, world_size, local_rank = distributed_slot()
    by_id = index_by_video_id(collect_videos(args.inputs))
    if not by_id:
        raise ExtractionUsageError(f"no video files found in {' '.join(args.inputs)}")
    out = prepare_output_folder(args.out)
    store = FeatureStore(out)
    mine = shard_for_rank(sorted(by_id.items(), key=lambda item: str(item[1])), rank, world_size)
    todo = [(video_id, path) for video_id, path in mine if not has_cue(store, video_id, CUE)]
    skipped = len(mine) - len(todo)
    prefix = f"llavidal extract object [rank {rank}/{world_size}]" if world_size > 1 else "llavidal extract object"
    agreement = ExitAgreement(world_size)
    if not todo:
        print(f"{prefix}: nothing to do ({skipped} already done)", file=sys.stderr)
        return agreement.exit_code(EXIT_OK)
    return agreement.exit_code(_extract(args, todo, skipped, store, prefix, rank, local_rank, tags, stop_words))


def _extract(args: argparse.Namespace, todo: list[tuple[str, Path]], skipped: int, store: FeatureStore, prefix: str,
             rank: int, local_rank: int, tags: list[str] | None, stop_words: list[str]) -> int:
    out = store.root
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device, local_rank)
    dtype = args.dtype or ("float16" if device.type == "cuda" else "float32")
    encoder = ObjectCueEncoder(
        tagger=args.tagger, detector=args.detector, encoder=args.encoder, tags=tags, stop_words=stop_words,
        num_frames=args.num_frames, num_keyframes=args.keyframes, max_tags=args.max_tags,
        score_threshold=args.score_threshold, nms_iou=args.nms_iou, track_iou=args.track_iou,
        max_gap=args.max_gap, min_track_length=args.min_track_length, max_objects=args.max_objects,
        decoder=args.decoder, batch_size=args.batch_size, dtype=dtype,
    ).to(device)
    options = dict(encoder.describe(), **options_metadata(encoder.options), num_frames=str(args.num_frames),
                   score_threshold=str(args.score_threshold), nms_iou=str(args.nms_iou), dtype=dtype,
                   **encoder.feature_metadata())

    written = failed = 0
    progress = tqdm(total=len(todo), desc=prefix, unit="video", disable=None if rank == 0 else True)
    for video_id, path in todo:
        try:
            result, video = encoder.extract(str(path))
        except VideoDecodeError as exc:
            record_failure(out, str(path), video_id, exc.reason, rank)
            failed += 1
        except LlavidalError as exc:  # e.g. no annotation file for this video (--detector annotations:DIR)
            record_failure(out, str(path), video_id, str(exc), rank)
            failed += 1
        else:
            metadata = dict(options, **result.metadata(), source_file=path.name, decoder=video.decoder,
                            frames=str(len(video.indices)), total_frames=str(video.total_frames),
                            frame_indices=json.dumps(video.indices), layout="objects,points,features")
            try:
                store.write(video_id, CUE, result.features, metadata, replace_corrupt=True)
                written += 1
            except LlavidalError as exc:  # NaN/inf features, a foreign file in the way: this video only
                record_failure(out, str(path), video_id, str(exc), rank)
                failed += 1
        progress.update()
    progress.close()
    return report_summary(prefix, written, skipped, failed, out)
