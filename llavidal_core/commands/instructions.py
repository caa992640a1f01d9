"""Built-in ``llavidal convert instructions``: Video-ChatGPT ``{video_id, q, a}`` JSON into the training format."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_core.hookspecs import hookimpl


def video_ids_with_features(folder: Path) -> set[str]:
    """Ids that have video features in ``folder``: a feature store (``<id>.safetensors``, sub-folders included)
    or the original's ``<id>.pkl`` files (`legacy_files`)."""
    from llavidal_core.features import FeatureStore, iter_feature_files
    from llavidal_core.legacy_features import legacy_files, video_id_from_legacy_name

    if not folder.is_dir():
        raise LlavidalError(f"{folder}: no such features folder")
    ids = {video_id_from_legacy_name(path.relative_to(folder).as_posix(), "video")
           for path in legacy_files(folder, "video")}
    if next(iter_feature_files(folder), None) is not None:
        store = FeatureStore(folder, create=False)
        for video_id in store.video_ids():
            try:
                if store.has(video_id, "video"):
                    ids.add(video_id)
            except LlavidalError as exc:  # one unreadable file drops its video, not the whole conversion
                print(f"llavidal: warning: {exc}; its video counts as having no features", file=sys.stderr)
    return ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="Video-ChatGPT instruction JSON: a list of {video_id, q, a}")
    parser.add_argument("--out", type=Path, required=True, help="training JSON to write")
    parser.add_argument("--features", type=Path, metavar="DIR",
                        help="keep only videos with features here (a feature store or a folder of <id>.pkl)")


def run(args: argparse.Namespace) -> int:
    from llavidal_core.data.instructions import convert_videoinstruct
    from llavidal_core.atomic_files import atomic_write_bytes

    from llavidal_core.json_text import parse_json_text

    try:
        records = parse_json_text(args.input.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LlavidalError(f"{args.input}: no such instruction file") from None
    except ValueError as exc:
        raise LlavidalError(f"{args.input}: not valid JSON ({exc})") from None
    if not isinstance(records, list):
        raise LlavidalError(f"{args.input}: expected a JSON list of {{video_id, q, a}} records")
    keep = video_ids_with_features(args.features) if args.features else None
    try:
        converted = convert_videoinstruct(records, keep)
    except ValueError as exc:
        raise LlavidalError(f"{args.input}: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, json.dumps(converted, indent=2).encode("utf-8"))
    dropped = len(records) - len(converted)
    print(f"wrote {len(converted)} samples to {args.out} ({dropped} dropped: no video features)")
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("convert", "instructions"), help="convert Video-ChatGPT {video_id, q, a} JSON into training JSON",
             add_arguments=add_arguments, run=run)
