"""The one extraction engine: a `CueEncoder` over many inputs, resumable, sharded, decoding ahead of encoding.

`extract_features` is the loop every ``llavidal extract <cue>`` runs (and the demo, on its own world):

1. each input's `CueEncoder.prepare` (decode, parse, resize) runs in ``workers`` DataLoader processes, ahead
   of the model: while the encoder runs on batch k, the workers prepare the inputs of batches k+1, k+2
   (``prefetch`` inputs per worker). With ``workers=0`` it runs in this process, in turn with the encoder;
2. prepared samples are grouped into batches of ``batch_size`` inputs and given to `CueEncoder.forward` on the
   encoder's device (one forward for the batch: a video encoder runs the frames of all its videos together);
3. each input's features are checked (`CueEncoder.check_features`, finite values) and written atomically as
   soon as they exist, with the encoder's metadata (`CueEncoder.feature_metadata`) and the input's own, so a
   killed run loses at most the batch in flight.

An input that cannot be prepared, whose forward fails (a batch that fails is retried input by input, so only
the culprit fails), or whose features cannot be stored (NaN or inf, a foreign file in the way) is one line in
``OUT/errors.jsonl`` (`llavidal_core.extraction.record_failure`); the others are written.

`run_extraction` adds what a command needs around it: input collection and ids, the shard of this process
(``RANK``/``WORLD_SIZE``), skipping inputs already done, the device and dtype, the exit agreement between
torchrun ranks, and the exit code (0 all written or already done, 3 some failed; usage errors raise
`UsageError`, exit code 2).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.extraction import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ExitAgreement,
    InputFile,
    collect_inputs,
    distributed_slot,
    has_cue,
    index_by_video_id,
    prepare_output_folder,
    record_failure,
    shard_for_rank,
)

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("safetensors", "videochatgpt")
DTYPE_NAMES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction (the engine's command-line options).

    ``workers``: DataLoader processes preparing inputs (0: in this process). ``batch_size``: inputs per
    encoder forward. ``prefetch``: inputs each worker prepares ahead. ``device``/``dtype``: None chooses
    (`llavidal_core.devices`: the GPU of this rank if any; float32 on CPU, float16 on CUDA). ``threads``:
    torch CPU threads of this process (None: torch's choice). ``output_format``: ``safetensors`` (the
    feature store) or ``videochatgpt`` (the original's ``<id>.pkl`` float16 arrays; cues that have a legacy
    layout only). ``progress``: a progress bar (None: on a terminal, rank 0 only).
    """

    workers: int = 0
    batch_size: int = 1
    prefetch: int = 2
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    output_format: str = "safetensors"
    progress: bool | None = None

    def check(self, cue: str) -> None:
        """Raise `UsageError` for a value that cannot run (named as its command-line option)."""
        if self.workers < 0:
            raise UsageError("--workers must be 0 or more")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be positive")
        if self.prefetch < 1:
            raise UsageError("--prefetch must be positive")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be positive")
        if self.dtype is not None and self.dtype not in DTYPE_NAMES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPE_NAMES)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}")
        if self.output_format == "videochatgpt":
            from llavidal_core.legacy_features import LEGACY_SUFFIXES

            if cue not in LEGACY_SUFFIXES:
                raise UsageError(f"--format videochatgpt: the original code stores no {cue!r} features "
                                 f"(only {', '.join(LEGACY_SUFFIXES)})")


@dataclass
class ExtractionReport:
    """What a run did. ``timeline``: one ``(kind, video_id, start, end, process id)`` per prepare and per
    forward (``kind`` ``"prepare"`` or ``"forward"``; times from ``time.monotonic``, comparable between
    processes), to see decoding overlap encoding."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    timeline: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    agreed_exit_code: int | None = None  # under torchrun: the worst code of all ranks

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 3 when something did (here, or on another rank under torchrun)."""
        if self.agreed_exit_code is not None:
            return self.agreed_exit_code
        return EXIT_SOME_FAILED if self.failed else EXIT_OK


class FeatureWriter:
    """Where finished inputs go: the safetensors feature store, or the original's ``<id>.pkl`` files.

    Nothing is created until `open` (so a run refused for a bad model leaves no folder behind).
    """

    def __init__(self, out: str | os.PathLike, cue: str, output_format: str = "safetensors") -> None:
        self.out = Path(out)
        self.cue = cue
        self.format = output_format
        self.store = None

    def open(self) -> "FeatureWriter":
        """Create the folder if missing and remove temp files of killed writers (`prepare_output_folder`)."""
        if self.store is None:
            from llavidal_core.features import FeatureStore

            prepare_output_folder(self.out)
            self.store = FeatureStore(self.out)
        return self

    def is_done(self, video_id: str) -> bool:
        if not self.out.is_dir():
            return False
        if self.format == "videochatgpt":
            from llavidal_core.legacy_features import legacy_file_name

            return (self.out / legacy_file_name(video_id, self.cue)).is_file()
        from llavidal_core.features import FeatureStore

        return has_cue(self.store or FeatureStore(self.out, create=False), video_id, self.cue)

    def write(self, video_id: str, features, metadata: dict[str, str]) -> None:
        """Write atomically; a `LlavidalError` for NaN/inf values or a file of another format in the way."""
        self.open()
        if self.format == "videochatgpt":
            import torch

            from llavidal_core.legacy_features import legacy_file_name, write_legacy_features

            path = self.out / legacy_file_name(video_id, self.cue)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_legacy_features(path, features.to(torch.float16).cpu())
        else:
            self.store.write(video_id, self.cue, features, metadata, replace_corrupt=True)


@dataclass
class _Prepared:
    """One input after `CueEncoder.prepare` (in a worker): the sample, or why there is none, and when."""

    position: int
    sample: Any
    error: str | None
    start: float
    end: float
    pid: int


class _PreparedInputs:
    """Map-style dataset: position → `_Prepared`, running the encoder's preparer (picklable) on the path."""

    def __init__(self, paths: Sequence[Path], prepare: Callable[[Any], Any]) -> None:
        self.paths = list(paths)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> _Prepared:
        start = time.monotonic()
        try:
            sample, error = self.prepare(str(self.paths[position])), None
        except Exception as exc:  # noqa: BLE001 - one unreadable input must not stop the others
            sample, error = None, describe_error(exc)
        return _Prepared(position, sample, error, start, time.monotonic(), os.getpid())


def describe_error(exc: BaseException) -> str:
    """The ``error`` ``errors.jsonl`` records (its ``path`` is recorded apart): the ``reason`` of an error that
    carries one apart from the path (a video that cannot be decoded), a llavidal error's own message, or any
    other exception's type and message."""
    if isinstance(exc, LlavidalError):
        return getattr(exc, "reason", None) or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _keep_as_is(item):
    return item


def _one_thread_per_worker(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


def extract_features(encoder, todo: Sequence[tuple[str, Path]], writer: FeatureWriter, *, workers: int = 0,
                     batch_size: int = 1, prefetch: int = 2, rank: int = 0, progress: bool | None = None,
                     description: str | None = None, report: ExtractionReport | None = None) -> ExtractionReport:
    """Run ``encoder`` (a `CueEncoder`, already on its device) over ``todo`` (``(video_id, path)`` pairs) and
    write each result with ``writer`` (module docstring). Failures are recorded in ``writer.out/errors.jsonl``
    under ``rank``. Returns the counts and the timeline (added to ``report`` when given)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    report = report if report is not None else ExtractionReport()
    if not todo:
        return report
    writer.open()
    static_metadata = encoder.feature_metadata()
    dataset = _PreparedInputs([path for _, path in todo], encoder.preparer(in_worker=workers > 0))
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_keep_as_is,
                        worker_init_fn=_one_thread_per_worker if workers else None,
                        prefetch_factor=prefetch if workers else None,
                        pin_memory=encoder.device.type == "cuda", persistent_workers=False)
    # None: tqdm shows the bar on a terminal only; ranks other than 0 never show one
    disable = True if rank != 0 else (None if progress is None else not progress)
    bar = tqdm(total=len(todo), desc=description or f"{writer.cue} features", unit="input", disable=disable)

    def fail(position: int, reason: str) -> None:
        video_id, path = todo[position]
        record_failure(writer.out, str(path), video_id, reason, rank)
        report.failed += 1
        logger.debug("%s: %s", path, reason)

    def encode_and_write(batch: list[_Prepared]) -> None:
        start = time.monotonic()
        try:
            with torch.inference_mode():
                outputs = encoder([item.sample for item in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"{type(encoder).__name__}.forward gave {len(outputs)} outputs for "
                                   f"{len(batch)} inputs")
        except Exception as exc:  # noqa: BLE001 - find the input at fault: retry one by one
            if len(batch) > 1:
                logger.debug("a batch of %d failed (%s); encoding its inputs one by one", len(batch), exc)
                for item in batch:
                    encode_and_write([item])
                return
            logger.debug("forward failed on %s", todo[batch[0].position][1], exc_info=True)
            fail(batch[0].position, describe_error(exc))
            bar.update(1)
            return
        end = time.monotonic()
        for item, output in zip(batch, outputs):
            video_id, path = todo[item.position]
            report.timeline.append(("forward", video_id, start, end, os.getpid()))
            try:
                features, metadata = _checked(encoder, output, path)
                writer.write(video_id, features, {**static_metadata, **metadata, "source": str(path),
                                                  "source_file": path.name})
                report.written += 1
            except (LlavidalError, ValueError, TypeError) as exc:  # NaN/inf, wrong shape, a foreign file
                fail(item.position, describe_error(exc))
            bar.update(1)

    pending: list[_Prepared] = []
    with bar:
        for item in loader:
            report.timeline.append(("prepare", todo[item.position][0], item.start, item.end, item.pid))
            if item.error is not None:
                fail(item.position, item.error)
                bar.update(1)
                continue
            pending.append(item)
            if len(pending) >= batch_size:
                encode_and_write(pending)
                pending = []
        if pending:
            encode_and_write(pending)
    return report


def _checked(encoder, output, path: Path):
    """``(features as stored, metadata)`` of one forward output, its rows checked against the spec."""
    from llavidal_core.encoder import split_encoded

    features, metadata = split_encoded(output)
    encoder.check_features(encoder.as_rows(features), source=path)
    return features.detach(), {key: str(value) for key, value in metadata.items()}


def suffix_filter(suffixes: Sequence[str] | None) -> Callable[[Path], bool]:
    """What a folder search keeps: files with one of ``suffixes`` (any case), or every file for None."""
    if suffixes is None:
        return lambda path: True
    wanted = tuple(suffix.lower() for suffix in suffixes)
    return lambda path: path.suffix.lower() in wanted


def run_extraction(cue: str, inputs: Sequence[str], out: str | os.PathLike,
                   build_encoder: Callable[[Any, Any], Any], settings: ExtractionSettings = ExtractionSettings(),
                   *, input_suffixes: Sequence[str] | None = None,
                   announce: Callable[[str], None] | None = None) -> ExtractionReport:
    """``llavidal extract CUE``'s whole run (module docstring); returns the report, whose ``exit_code`` the
    ranks have agreed on under torchrun.

    ``build_encoder(device, dtype)`` builds the encoder (a `CueEncoder`) on ``device`` in ``dtype`` (a torch
    dtype); it is called only when something is left to do, after every usage check. ``input_suffixes``:
    the files a folder search keeps (None: all). ``announce`` receives the one-line outcome when there is
    nothing to do. Raises `UsageError` (nothing written) for bad settings, missing inputs, no input files,
    two inputs with one id.
    """
    import torch

    from llavidal_core.devices import choose_device

    settings.check(cue)
    rank, world_size, local_rank = distributed_slot()
    found: list[InputFile] = collect_inputs(inputs, suffix_filter(input_suffixes))
    by_id = index_by_video_id(found, legacy=settings.output_format == "videochatgpt")
    if not by_id:
        kinds = f" ({', '.join(input_suffixes)})" if input_suffixes else ""
        raise UsageError(f"no input files{kinds} for the {cue} cue in {' '.join(map(str, inputs))}")
    mine = shard_for_rank(sorted(by_id.items(), key=lambda item: str(item[1])), rank, world_size)
    device = choose_device(settings.device, local_rank)
    dtype = getattr(torch, settings.dtype) if settings.dtype else (
        torch.float16 if device.type == "cuda" else torch.float32)
    writer = FeatureWriter(out, cue, settings.output_format)
    todo = [(video_id, path) for video_id, path in mine if not writer.is_done(video_id)]
    report = ExtractionReport(skipped=len(mine) - len(todo))
    agreement = ExitAgreement(world_size)
    if todo:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        encoder = build_encoder(device, dtype)
        encoder = encoder.to(device).eval()
        prefix = f"{cue} features" + (f" (rank {rank}/{world_size})" if world_size > 1 else "")
        extract_features(encoder, todo, writer, workers=settings.workers, batch_size=settings.batch_size,
                         prefetch=settings.prefetch, rank=rank, progress=settings.progress, description=prefix,
                         report=report)
    elif announce is not None:
        announce(f"nothing to do ({report.skipped} already done)")
    report.agreed_exit_code = agreement.exit_code(report.exit_code)
    return report
