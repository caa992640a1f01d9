"""``llavidal curate person-crop|stitch`` and ``llavidal prepare smarthome-ar|tsu-tc|tsu-descriptions``:
arguments (argparse only, cheap to import) and entry functions that import their work when they run.

Every command is per video, resumable (finished outputs are skipped), sharded by ``RANK``/``WORLD_SIZE``,
logs failures to ``OUT/errors.jsonl`` and exits 0, 3 (some failed) or 2 (usage); see
`llavidal_curate.step_runner`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

RUNNER_NOTE = ("Per video, resumable (outputs already written are skipped), sharded by RANK/WORLD_SIZE; failures go "
               "to OUT/errors.jsonl; exit 0, 3 when some failed, 2 on usage errors.")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 224x224") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return width, height


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_person_crop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("ADL-X step 1: crop NTU RGB+D videos (<id>_rgb.avi) around all bodies' colour-frame joints "
                          "(<id>.skeleton), as adlx_curation/step1_person_augmented_generation.py; writes "
                          "OUT/rgb/<id>_rgb.avi and OUT/skeletons/<id>.skeleton. " + RUNNER_NOTE)
    parser.add_argument("--videos", type=Path, required=True, help="folder of NTU RGB+D <id>_rgb.avi (searched recursively)")
    parser.add_argument("--skeletons", type=Path, required=True, help="folder of <id>.skeleton files")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--slack", type=_non_negative, default=64, help="pixels added to the box (default: 64)")
    parser.add_argument("--size", type=_size, default=(224, 224), help="output WIDTHxHEIGHT (default: 224x224)")


def run_person_crop_command(args: argparse.Namespace) -> int:
    from llavidal_curate.person_crop import run_person_crop

    return run_person_crop(args.videos, args.skeletons, args.out, slack=args.slack, size=args.size)


def add_stitch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("ADL-X step 2: concatenate each video_mapping.json entry's cropped clips into OUT/<name>.mp4 "
                          "with OUT/<name>.json listing each part's NTU action and frame range "
                          "(adlx_curation/step2_temporal_stitching.py). " + RUNNER_NOTE)
    parser.add_argument("--mapping", type=Path, required=True, help="video_mapping.json: name -> list of clip files")
    parser.add_argument("--clips", type=Path, required=True,
                        help="folder of the cropped clips (person-crop's OUT or OUT/rgb)")
    parser.add_argument("--actions", type=Path, help="action_mapping.json (per-video sentence of action labels)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run_stitch_command(args: argparse.Namespace) -> int:
    from llavidal_curate.stitch import run_stitch

    return run_stitch(args.mapping, args.clips, args.out, args.actions)


def add_smarthome_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Smarthome-AR videos: each trimmed Toyota Smarthome clip cropped around its people and "
                          "resized, written as OUT/<name>.mp4, the names ADLMCQ Smarthome-AR references "
                          "(scripts/data_processing/sh_human_cropping.py). " + RUNNER_NOTE)
    parser.add_argument("--videos", type=Path, required=True, help="folder of trimmed Smarthome .mp4/.avi clips")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--detector", required=True,
                        help="person boxes: a transformers object-detection model folder or Hub id (the paper used "
                             "YOLO11n), or annotations:DIR with DIR/<name>.json = per frame a list of "
                             "[x1, y1, x2, y2] person boxes")
    parser.add_argument("--threshold", type=float, default=0.25, help="detector score threshold (default: 0.25)")
    parser.add_argument("--slack", type=_non_negative, default=48, help="pixels added on each side (default: 48)")
    parser.add_argument("--size", type=_size, default=(224, 224), help="output WIDTHxHEIGHT (default: 224x224)")
    parser.add_argument("--device", default="cpu", help="detector device (default: cpu)")


def run_smarthome_command(args: argparse.Namespace) -> int:
    from llavidal_curate.prepare_smarthome import run_prepare_smarthome

    return run_prepare_smarthome(args.videos, args.out, args.detector, threshold=args.threshold, slack=args.slack,
                                 size=args.size, device=args.device)


def add_tsu_tc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("TSU-TC videos: clips of 4-5 consecutive actions (under 60 s) cut from the untrimmed "
                          "Toyota Smarthome videos by the annotation CSVs, written as OUT/<P>/<video>/clips/clip_<n>.mp4 "
                          "with OUT/<P>/<video>/metadata.json (scripts/data_processing/tsu_trim_actions.py). "
                          + RUNNER_NOTE)
    parser.add_argument("--annotations", type=Path, required=True, help="TSU Annotation folder (P*/<video>.csv)")
    parser.add_argument("--videos", type=Path, required=True, help="TSU Videos_MP4 folder (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run_tsu_tc_command(args: argparse.Namespace) -> int:
    from llavidal_curate.prepare_tsu import run_prepare_tsu_tc

    return run_prepare_tsu_tc(args.annotations, args.videos, args.out)


def add_tsu_descriptions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("TSU-Descriptions videos: each untrimmed video cut into one-minute clips "
                          "OUT/<video>_clip1.mp4, _clip2.mp4 ... (scripts/data_processing/tsu_trim_1sec_clips.py). "
                          + RUNNER_NOTE)
    parser.add_argument("--videos", type=Path, required=True, help="TSU Videos_MP4 folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--clip-seconds", type=float, default=60.0, help="clip length (default: 60)")


def run_tsu_descriptions_command(args: argparse.Namespace) -> int:
    from llavidal_core.errors import UsageError

    from llavidal_curate.prepare_tsu import run_prepare_tsu_descriptions

    if not args.clip_seconds > 0:
        raise UsageError("--clip-seconds must be positive")
    return run_prepare_tsu_descriptions(args.videos, args.out, clip_seconds=args.clip_seconds)


def register_video_commands(register) -> None:
    """Register the curation and preparation video commands with the CLI's ``register`` callback."""
    register(("curate", "person-crop"), help="ADL-X step 1: person-cropped NTU RGB+D clips and skeletons",
             add_arguments=add_person_crop_arguments, run=run_person_crop_command)
    register(("curate", "stitch"), help="ADL-X step 2: stitch cropped clips per video_mapping.json",
             add_arguments=add_stitch_arguments, run=run_stitch_command)
    register(("prepare", "smarthome-ar"), help="person-cropped Smarthome clips for ADLMCQ Smarthome-AR",
             add_arguments=add_smarthome_arguments, run=run_smarthome_command)
    register(("prepare", "tsu-tc"), help="TSU action-sequence clips for ADLMCQ TSU-TC",
             add_arguments=add_tsu_tc_arguments, run=run_tsu_tc_command)
    register(("prepare", "tsu-descriptions"), help="one-minute TSU clips for TSU descriptions",
             add_arguments=add_tsu_descriptions_arguments, run=run_tsu_descriptions_command)
