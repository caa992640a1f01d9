"""``llavidal extract CUE``: the engine's command-line options, shared by every cue, and the generic command.

A cue plugin that needs options of its own (a model id, frames, pooling) registers its ``extract CUE``
command with `add_extraction_arguments` plus its options and runs it with `run_extract_command`, giving only
how to build its encoder from the parsed options. Every other cue with an encoder gets `generic_extract_command`:
``--model ID_OR_DIR`` loads its encoder with ``from_pretrained`` (without it the encoder is built with its
defaults). Only argparse here: the engine (`llavidal_core.extraction_engine`) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ENGINE_DESCRIPTION = (
    "INPUT is a file, a folder (searched recursively for the cue's files) or a text file listing paths, one per "
    "line (relative ones are taken from the list's folder). Each input is written as OUT/<id>.safetensors, its id "
    "being its path under the folder or list it came from without the suffix (a/b/x.mp4 -> OUT/a/b/x.safetensors; "
    "a file given alone: its name); inputs already done are skipped, so a rerun resumes. Inputs that cannot be "
    "read or encoded are listed in OUT/errors.jsonl and the others written. Exit code: 0 all done, 3 some failed, "
    "2 usage error. Under torchrun, RANK/WORLD_SIZE split the sorted inputs between processes; --workers "
    "processes prepare (decode, parse) the next inputs while the encoder runs."
)


def add_extraction_arguments(parser: argparse.ArgumentParser, *, workers: int = 0, batch_size: int = 1,
                             inputs_help: str = "input files, folders or lists of paths",
                             formats: bool = False) -> None:
    """The options every ``llavidal extract CUE`` has: INPUT..., --out, --workers, --batch-size, --device,
    --dtype, --threads (and --format where the cue has the original's .pkl layout); defaults per cue."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (a feature store)")
    parser.add_argument("--workers", type=int, default=workers,
                        help="processes preparing inputs (decoding, parsing) ahead of the encoder; 0 prepares "
                             f"them in the main process (default: {workers})")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help=f"inputs per encoder forward pass (default: {batch_size})")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available; under "
                                                       "torchrun cuda:LOCAL_RANK)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="encoder precision (default: float32 on CPU, float16 on CUDA)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the encoder (default: torch's choice)")
    parser.add_argument("--trace", default=None, metavar="FILE.jsonl",
                        help="write when each input was prepared (and by which process) and encoded, one JSON line "
                             "per step, to see whether decoding keeps the encoder busy")
    if formats:
        parser.add_argument("--format", choices=("safetensors", "videochatgpt"), default="safetensors",
                            help="safetensors feature store (default) or the original's <id>.pkl float16 arrays, "
                                 "named as the original names them (the file name up to its first dot)")


def extraction_settings(args: argparse.Namespace):
    """The `ExtractionSettings` of parsed `add_extraction_arguments` options."""
    from llavidal_core.extraction_engine import ExtractionSettings

    return ExtractionSettings(workers=args.workers, batch_size=args.batch_size, device=args.device,
                              dtype=args.dtype, threads=args.threads,
                              output_format=getattr(args, "format", "safetensors"))


def run_extract_command(args: argparse.Namespace, cue: str, build_encoder: Callable[[Any, Any], Any],
                        input_suffixes: Sequence[str] | None = None) -> int:
    """Run the engine with the parsed options; print its outcome on stderr; return the exit code (0 or 3).

    ``build_encoder(device, dtype)`` builds the cue's encoder (called only when there is work left).
    A `UsageError` propagates (the CLI prints it, exit code 2).
    """
    from llavidal_core.extraction import ERRORS_FILE, distributed_slot
    from llavidal_core.extraction_engine import run_extraction

    rank, world_size, _ = distributed_slot()
    prefix = f"llavidal extract {cue}" + (f" [rank {rank}/{world_size}]" if world_size > 1 else "")

    def announce(line: str) -> None:
        print(f"{prefix}: {line}", file=sys.stderr)

    report = run_extraction(cue, args.inputs, args.out, build_encoder, extraction_settings(args),
                            input_suffixes=input_suffixes, announce=announce)
    if getattr(args, "trace", None):
        _write_trace(Path(args.trace), report.timeline)
    if report.written or report.failed:
        summary = f"{report.written} written, {report.skipped} already done, {report.failed} failed"
        if report.failed:
            summary += f" (see {Path(args.out) / ERRORS_FILE})"
        announce(summary)
    return report.exit_code


def _write_trace(path: Path, timeline) -> None:
    """``timeline`` as JSON lines ``{"step", "id", "start", "end", "pid"}`` (seconds, ``time.monotonic``)."""
    import json

    from llavidal_core.atomic_files import atomic_write_bytes

    lines = [json.dumps({"step": step, "id": video_id, "start": round(start, 6), "end": round(end, 6), "pid": pid})
             for step, video_id, start, end, pid in timeline]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8") if lines else b"")


# -- the generic command of a cue whose plugin adds no options --------------------------------------------------


def generic_extract_command(cue_registration):
    """The `CommandRegistration` of ``extract NAME`` for a registered cue with an encoder (``--model``)."""
    from llavidal_core.plugins import CommandRegistration

    name = cue_registration.spec.name
    about = f" ({cue_registration.spec.description})" if cue_registration.spec.description else ""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.description = f"Extract the {name} cue's features{about}. {ENGINE_DESCRIPTION}"
        add_extraction_arguments(parser)
        parser.add_argument("--model", default=None, metavar="ID_OR_DIR",
                            help="the encoder's folder or Hub id, loaded with from_pretrained (default: the "
                                 "encoder built with its own defaults)")

    def run(args: argparse.Namespace) -> int:
        factory = cue_registration.encoder_factory()

        def build(device, dtype):
            return _build_generic(factory, args.model, name).to(device=device, dtype=dtype)

        return run_extract_command(args, name, build, getattr(factory, "input_suffixes", None))

    return CommandRegistration(("extract", name), f"extract {name} cue features into a feature store", run,
                               add_arguments, cue_registration.source)


def _build_generic(factory, model: str | None, cue: str):
    from llavidal_core.errors import UsageError

    try:
        return factory.from_pretrained(model) if model is not None else factory()
    except Exception as exc:  # noqa: BLE001 - any failure to build is a bad --model (or a broken plugin)
        what = f"--model {model}" if model is not None else f"the {cue} cue's encoder with its defaults"
        raise UsageError(f"{what}: cannot build the encoder ({type(exc).__name__}: {exc})") from None
