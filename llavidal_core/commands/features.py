"""Built-in ``llavidal features ...`` commands (registered through the commands hook): list a feature
store, and import or export the original code's ``.pkl`` features.

``features list`` prints one JSON line per video, from the files' headers (the tensors are not read). A
file whose header cannot be read is one line ``{"video_id", "path", "error"}`` in the same stream and the
listing goes on; the exit code is then 1, with a count on stderr. A reader that closes stdout early
(``| head -1``) ends the listing quietly, exit code 0.

The feature modules import torch, so they are imported inside the commands, never here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from llavidal_core.errors import FeatureStoreError
from llavidal_core.hookspecs import hookimpl
from llavidal_core.stdout_lines import print_lines


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store_dir", metavar="DIR", help="feature store folder")
    parser.add_argument("--cue", metavar="NAME", help="list only videos holding this cue, and only this cue")


def run_list(args: argparse.Namespace) -> int:
    """Print one JSON object per video: its id and each cue's shape and dtype, or the error reading its file
    (module docstring); exit code 1 when a file could not be read."""
    from llavidal_core.features import FeatureStore

    store = FeatureStore(args.store_dir, create=False)
    unreadable: list[str] = []
    if not print_lines(_listing_lines(store, args.cue, unreadable)):
        return 0
    if unreadable:
        print(f"llavidal features list: {len(unreadable)} feature file(s) could not be read (their lines hold "
              "an \"error\")", file=sys.stderr)
        return 1
    return 0


def _listing_lines(store, cue: str | None, unreadable: list[str]) -> Iterator[str]:
    """One JSON line per video of ``store`` (with ``cue``: per video holding it); the id of each video whose
    file cannot be read is added to ``unreadable`` and its line holds the error."""
    for video_id in store.video_ids():
        try:
            described = _describe_cues(store, video_id, cue)
        except FeatureStoreError as exc:
            error = str(exc)
        except (KeyError, ValueError) as exc:
            error = f"{store.path_for(video_id)}: a cue's shape or dtype is missing from the header ({exc!r})"
        else:
            if described is not None:
                yield json.dumps({"video_id": video_id, "cues": described})
            continue
        unreadable.append(video_id)
        yield json.dumps({"video_id": video_id, "path": str(store.path_for(video_id)), "error": error})


def _describe_cues(store, video_id: str, cue: str | None) -> dict | None:
    """``{cue: {"shape", "dtype"}}`` from the file's header; None when ``cue`` is asked for and not there."""
    if cue and not store.has(video_id, cue):
        return None
    described = {}
    for name in [cue] if cue else store.cues(video_id):
        metadata = store.metadata(video_id, name)
        described[name] = {"shape": json.loads(metadata["shape"]), "dtype": metadata["dtype"]}
    return described


def add_transfer_arguments(parser: argparse.ArgumentParser, source_help: str, out_help: str) -> None:
    parser.add_argument("source_dir", metavar="SRC_DIR", help=source_help)
    parser.add_argument("--cue", required=True, metavar="NAME", help="video, pose or object")
    parser.add_argument("--out", required=True, metavar="DIR", help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="replace what is already there")


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    add_transfer_arguments(parser, "folder of <id>.pkl / <id>_pose.pkl / <id>_object.pkl files",
                           "feature store folder to write into (created if missing)")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    add_transfer_arguments(parser, "feature store folder", "folder to write the .pkl files into")


def run_import(args: argparse.Namespace) -> int:
    from llavidal_core.features import FeatureStore
    from llavidal_core.legacy_features import import_legacy_folder

    if not Path(args.source_dir).is_dir():
        raise FeatureStoreError(f"{args.source_dir}: no such folder of .pkl features")
    report = import_legacy_folder(args.source_dir, FeatureStore(args.out), args.cue, overwrite=args.overwrite)
    return _print_report(report, f"imported {len(report.written)} {args.cue} .pkl files into {args.out}",
                         "already in the store")


def run_export(args: argparse.Namespace) -> int:
    from llavidal_core.features import FeatureStore
    from llavidal_core.legacy_features import export_legacy_folder

    report = export_legacy_folder(FeatureStore(args.source_dir, create=False), args.cue, args.out,
                                  overwrite=args.overwrite)
    return _print_report(report, f"exported {len(report.written)} {args.cue} .pkl files into {args.out}",
                         "the .pkl already existed")


def _print_report(report, done: str, skip_reason: str) -> int:
    """One summary line on stdout, each failure on stderr; exit code 1 if anything failed."""
    print_lines([f"{done} ({len(report.skipped)} skipped: {skip_reason}; {len(report.failed)} failed)"])
    for path, error in report.failed:
        where = "" if error.startswith(path) else f"{path}: "
        print(f"failed: {where}{error}", file=sys.stderr)
    return 1 if report.failed else 0


@hookimpl
def llavidal_register_commands(register):
    register(("features", "list"), help="list the videos and cues in a feature store, one JSON line each",
             add_arguments=add_list_arguments, run=run_list)
    register(("features", "import-pkl"), help="import the original code's .pkl features into a feature store",
             add_arguments=add_import_arguments, run=run_import)
    register(("features", "export-pkl"), help="export a feature store's cue as the original code's .pkl files",
             add_arguments=add_export_arguments, run=run_export)
