"""The work of ``llavidal extract video``: inputs → sharded, resumable, batched feature extraction.

Flow: expand the inputs (files, folders, lists of paths) into a sorted list of videos, each with its id
(`llavidal_core.extraction`: its path under the folder or list it came from, without the suffix; with
``--format videochatgpt`` the original's name up to the first dot, as its ``<id>.pkl`` files are named),
refuse two videos with one id, keep this process's shard (``RANK``/``WORLD_SIZE``, set by torchrun), drop
the videos already written, then decode in DataLoader workers while the encoder runs in the main process.
Each video's features are written atomically as soon as they exist, so a killed run loses at most the
videos in flight and a rerun picks up the rest. Videos that cannot be decoded go to ``OUT/errors.jsonl``.
Under torchrun the ranks wait for each other at the end (a gloo group, `ExitAgreement`) and all exit with
the worst code.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from llavidal_core.errors import LlavidalError
from llavidal_core.extraction import (
    EXIT_OK,
    ExitAgreement,
    ExtractionUsageError,
    InputFile,
    choose_device,
    collect_inputs,
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
from llavidal_core.legacy_features import legacy_file_name, write_legacy_features
from llavidal_core.video_ids import is_video_path
from llavidal_video.decoding import DecodedVideo, VideoDecodeError
from llavidal_video.encoder import DTYPES, VideoCueEncoder, VideoFrameSource

CUE = "video"


@dataclass
class DecodeFailure:
    path: str
    reason: str


def collect_videos(inputs: list[str]) -> list[InputFile]:
    """Video files, folders searched for video extensions and path lists, sorted, each with the root of its
    id (see `collect_inputs`)."""
    return collect_inputs(inputs, is_video_path)


class FeatureWriter:
    """Where finished videos go: the safetensors feature store, or the original's ``<id>.pkl`` files."""

    def __init__(self, out: Path, output_format: str) -> None:
        self.out = prepare_output_folder(out)
        self.format = output_format
        self.store = FeatureStore(out) if output_format == "safetensors" else None

    def is_done(self, video_id: str) -> bool:
        if self.store is None:
            return (self.out / legacy_file_name(video_id, CUE)).is_file()
        return has_cue(self.store, video_id, CUE)

    def write(self, video_id: str, features: torch.Tensor, metadata: dict[str, str]) -> None:
        if self.store is None:
            write_legacy_features(self.out / legacy_file_name(video_id, CUE), features.to(torch.float16).cpu())
        else:
            self.store.write(video_id, CUE, features, metadata, replace_corrupt=True)


class VideoFiles(Dataset):
    """Decodes one video per item in DataLoader workers; a bad file becomes a `DecodeFailure`, not a crash."""

    def __init__(self, paths: list[Path], source: VideoFrameSource) -> None:
        self.paths = paths
        self.source = source

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedVideo | DecodeFailure:
        path = str(self.paths[index])
        try:
            return self.source(path)
        except VideoDecodeError as exc:
            return DecodeFailure(path, exc.reason)


def _keep_as_is(item):
    return item


def _single_threaded_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _check_arguments(args: argparse.Namespace) -> None:
    for name in ("num_frames", "batch_size", "pool_stride"):
        if getattr(args, name) <= 0:
            raise ExtractionUsageError(f"--{name.replace('_', '-')} must be positive")
    if args.workers < 0:
        raise ExtractionUsageError("--workers must be 0 or more")
    if args.sampling == "fps" and not args.fps > 0:
        raise ExtractionUsageError("--fps must be positive")
    if args.preprocess == "reference" and args.decoder == "pyav":
        raise ExtractionUsageError("--preprocess reference decodes with decord, as the original; drop --decoder pyav")
    if args.pretrained is not None and not args.model.startswith("open_clip:"):
        raise ExtractionUsageError("--pretrained is for open_clip towers (--model open_clip:<name>)")


def run_extraction(args: argparse.Namespace) -> int:
    return run_reporting_usage_errors(_run, args)


def _run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    rank, world_size, local_rank = distributed_slot()
    by_id = index_by_video_id(collect_videos(args.inputs), legacy=args.format == "videochatgpt")
    if not by_id:
        raise ExtractionUsageError(f"no video files found in {' '.join(args.inputs)}")
    writer = FeatureWriter(Path(args.out), args.format)
    mine = shard_for_rank(sorted(by_id.items(), key=lambda item: str(item[1])), rank, world_size)
    todo = [(video_id, path) for video_id, path in mine if not writer.is_done(video_id)]
    skipped = len(mine) - len(todo)
    prefix = f"llavidal extract video [rank {rank}/{world_size}]" if world_size > 1 else "llavidal extract video"
    agreement = ExitAgreement(world_size)
    if not todo:
        print(f"{prefix}: nothing to do ({skipped} already done)", file=sys.stderr)
        return agreement.exit_code(EXIT_OK)
    return agreement.exit_code(_extract(args, todo, skipped, writer, prefix, rank, local_rank))


def _extract(args: argparse.Namespace, todo: list[tuple[str, Path]], skipped: int, writer: FeatureWriter,
             prefix: str, rank: int, local_rank: int) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device, local_rank)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    encoder = VideoCueEncoder.from_pretrained(
        args.model, layer=args.layer, pretrained=args.pretrained, dtype=dtype, num_frames=args.num_frames,
        sampling=args.sampling, sampling_fps=args.fps, pool=args.pool, pool_stride=args.pool_stride,
        preprocess=args.preprocess, decoder=args.decoder, frame_batch_size=args.batch_size,
    ).to(device)
    options = encoder.describe_options()

    source = encoder.frame_source(num_threads=1 if args.workers else 0)
    loader = DataLoader(VideoFiles([path for _, path in todo], source), batch_size=None, shuffle=False,
                        num_workers=args.workers, collate_fn=_keep_as_is, worker_init_fn=_single_threaded_worker,
                        prefetch_factor=2 if args.workers else None, pin_memory=device.type == "cuda")
    written = failed = 0
    progress = tqdm(total=len(todo), desc=prefix, unit="video", disable=None if rank == 0 else True)
    for (video_id, path), item in zip(todo, loader):
        if isinstance(item, DecodeFailure):
            record_failure(writer.out, item.path, video_id, item.reason, rank)
            failed += 1
        else:
            features = encoder.encode([item])[0]
            metadata = dict(options, source_file=path.name, decoder=item.decoder, frames=str(len(item.indices)),
                            total_frames=str(item.total_frames), claimed_frames=str(item.claimed_frames),
                            frame_indices=json.dumps(item.indices), frame_times=json.dumps(item.timestamps))
            try:
                writer.write(video_id, features, metadata)
                written += 1
            except LlavidalError as exc:  # NaN/inf features, a foreign file in the way: this video only
                record_failure(writer.out, str(path), video_id, str(exc), rank)
                failed += 1
        progress.update()
    progress.close()
    return report_summary(prefix, written, skipped, failed, Path(args.out))
