"""The work of ``llavidal extract video``: inputs → sharded, resumable, batched feature extraction.

Flow: expand the inputs (files, folders, lists of paths) into a sorted list of videos, refuse two videos
with one id, keep this process's shard (``RANK``/``WORLD_SIZE``, set by torchrun), drop the videos already
written, then decode in DataLoader workers while the encoder runs in the main process. Each video's
features are written atomically as soon as they exist, so a killed run loses at most the videos in flight
and a rerun picks up the rest. Videos that cannot be decoded go to ``OUT/errors.jsonl``. Under torchrun the ranks
wait for each other at the end (a gloo group, `ExitAgreement`) and all exit with the worst code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from llavidal_core.errors import LlavidalError
from llavidal_core.features import FeatureStore, video_id_from_path
from llavidal_core.legacy_features import legacy_file_name, write_legacy_features
from llavidal_video.command import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from llavidal_video.decoding import DecodedVideo, VideoDecodeError, is_video_path
from llavidal_video.encoder import DTYPES, VideoCueEncoder, VideoFrameSource

CUE = "video"
ERRORS_FILE = "errors.jsonl"
PATH_LIST_SUFFIXES = (".txt", ".lst", ".list")


class UsageError(LlavidalError):
    """A problem with the command line itself (exit code 2)."""


@dataclass
class DecodeFailure:
    path: str
    reason: str


def collect_videos(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for video extensions, path lists read; sorted, unique."""
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(p.resolve() for p in path.rglob("*") if p.is_file() and is_video_path(p))
        elif path.is_file() and path.suffix.lower() in PATH_LIST_SUFFIXES:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                listed = Path(line) if Path(line).is_absolute() else path.parent / line
                if not listed.is_file():
                    raise UsageError(f"{path}:{number}: no such file {line!r}")
                found.add(listed.resolve())
        elif path.is_file():
            found.add(path.resolve())
        else:
            raise UsageError(f"no such file or folder: {item}")
    return sorted(found, key=str)


def index_by_video_id(videos: list[Path]) -> dict[str, Path]:
    """``{video_id: path}``; two files with one id are a `UsageError` naming both."""
    by_id: dict[str, Path] = {}
    for path in videos:
        try:
            video_id = video_id_from_path(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if video_id in by_id:
            raise UsageError(f"two inputs have the video id {video_id!r} (the file name up to its first dot): "
                             f"{by_id[video_id]} and {path}; rename one or extract them in separate runs")
        by_id[video_id] = path
    return by_id


def shard_for_rank(items: list, rank: int, world_size: int) -> list:
    """Every ``world_size``-th item starting at ``rank`` (the inputs must already be sorted)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"RANK={rank} WORLD_SIZE={world_size} is not a valid process slot")
    return items[rank::world_size]


def distributed_slot() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment, (0, 1, 0) without it."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise UsageError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc


class FeatureWriter:
    """Where finished videos go: the safetensors feature store, or the original's ``<id>.pkl`` files."""

    def __init__(self, out: Path, output_format: str) -> None:
        self.out = out
        self.format = output_format
        self.store = FeatureStore(out) if output_format == "safetensors" else None
        out.mkdir(parents=True, exist_ok=True)

    def is_done(self, video_id: str) -> bool:
        if self.store is None:
            return (self.out / legacy_file_name(video_id, CUE)).is_file()
        try:
            return self.store.has(video_id, CUE)
        except LlavidalError:
            return False

    def write(self, video_id: str, features: torch.Tensor, metadata: dict[str, str]) -> None:
        if self.store is None:
            write_legacy_features(self.out / legacy_file_name(video_id, CUE), features.to(torch.float16).cpu())
        else:
            self.store.write(video_id, CUE, features, metadata)

    def record_failure(self, path: str, video_id: str, reason: str, rank: int) -> None:
        """Append one JSON line to ``errors.jsonl`` (one ``write`` on an O_APPEND file: ranks may share it)."""
        line = json.dumps({"path": path, "video_id": video_id, "error": reason, "rank": rank,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
        descriptor = os.open(self.out / ERRORS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode("utf-8"))
        finally:
            os.close(descriptor)


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


class ExitAgreement:
    """Under torchrun (``MASTER_ADDR`` set, ``WORLD_SIZE`` > 1): a gloo group whose only job is to make every
    rank wait for the others at the end and exit with the same code (3 if any rank had failures). Without it,
    torchrun would stop the ranks still working as soon as one rank exits with 3. Ranks started by hand (no
    ``MASTER_ADDR``) run independently."""

    def __init__(self, world_size: int) -> None:
        self.active = world_size > 1 and "MASTER_ADDR" in os.environ
        if self.active:
            import datetime

            import torch.distributed as dist

            dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))

    def exit_code(self, code: int) -> int:
        if not self.active:
            return code
        import torch.distributed as dist

        worst = torch.tensor([code])
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        dist.destroy_process_group()
        return int(worst.item())


def _keep_as_is(item):
    return item


def _single_threaded_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _choose_device(requested: str | None, local_rank: int) -> torch.device:
    if requested is None:
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}") if torch.cuda.is_available() \
            else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: CUDA is not available here")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return device


def _check_arguments(args: argparse.Namespace) -> None:
    for name in ("num_frames", "batch_size", "pool_stride"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.workers < 0:
        raise UsageError("--workers must be 0 or more")
    if args.sampling == "fps" and not args.fps > 0:
        raise UsageError("--fps must be positive")
    if args.preprocess == "reference" and args.decoder == "pyav":
        raise UsageError("--preprocess reference decodes with decord, as the original; drop --decoder pyav")
    if args.pretrained is not None and not args.model.startswith("open_clip:"):
        raise UsageError("--pretrained is for open_clip towers (--model open_clip:<name>)")


def run_extraction(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"llavidal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    rank, world_size, local_rank = distributed_slot()
    by_id = index_by_video_id(collect_videos(args.inputs))
    if not by_id:
        raise UsageError(f"no video files found in {' '.join(args.inputs)}")
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
    device = _choose_device(args.device, local_rank)
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
            writer.record_failure(item.path, video_id, item.reason, rank)
            failed += 1
        else:
            features = encoder.encode([item])[0]
            metadata = dict(options, source_file=path.name, decoder=item.decoder, frames=str(len(item.indices)),
                            total_frames=str(item.total_frames), frame_indices=json.dumps(item.indices))
            writer.write(video_id, features, metadata)
            written += 1
        progress.update()
    progress.close()
    summary = f"{prefix}: {written} written, {skipped} already done, {failed} failed"
    if failed:
        summary += f" (see {Path(args.out) / ERRORS_FILE})"
    print(summary, file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK
