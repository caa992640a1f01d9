"""``benchmarks/gpu_check.py`` at ``--tiny`` on the CPU: every row of its table, in order, with finite positive
numbers that agree with each other, and the ``--budget-s`` guard naming each step it skips."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SMALL_SHARED_VIDEOS = [ROOT.parent / "shared" / "data" / "videos" / name for name in ("nasa_13013.mp4", "video_0.mov")]
EXTRACT_KEYS = ["extract.floor", "extract.ours", "extract.original.float32", "extract.original.bfloat16"]
RATIO_KEYS = ["extract.ratio.ours_floor", "extract.ratio.ours_original.float32", "extract.ratio.ours_original.bfloat16"]
MODEL_KEYS = ["train.step", "generate.batched", "generate.sequential", "generate.ratio.batched_sequential"]
STEPS = ["extract.setup", "extract.floor", "extract.ours", "extract.original.float32", "extract.original.bfloat16",
         "build", "train", "generate"]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("benchmarks_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        if bars:  # the script turns transformers' bars off for its process; the rest of the suite keeps them
            transformers_logging.enable_progress_bar()


def run(gpu_check, capsys, *argv) -> tuple[int, list[str], dict]:
    code = gpu_check.main(["--tiny", "--device", "cpu", *argv])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, lines, json.loads(lines[-1])


def test_tiny_run_prints_every_row_with_finite_positive_numbers(gpu_check, llavidal_plugins, capsys):
    # the two quick shared clips (the 1080p one takes seconds to decode here); synthetic clips without them
    videos = ["--videos", *map(str, SMALL_SHARED_VIDEOS)] if all(p.is_file() for p in SMALL_SHARED_VIDEOS) else []
    code, lines, report = run(gpu_check, capsys, *videos)

    assert report["failed"] == {} and code == 0
    assert report["skipped"] == [] and not any(line.startswith(("skipped:", "FAILED:")) for line in lines)
    table = [line for line in lines if line.startswith("|")]
    assert table[:2] == ["| key | measurement | precision | seconds | result |", "|---|---|---|---:|---|"]
    keys = EXTRACT_KEYS + RATIO_KEYS + MODEL_KEYS
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[2:]] == keys
    rows = {row["key"]: row for row in report["rows"]}
    assert list(rows) == keys
    for row in report["rows"]:
        numbers = [*row["values"].values(), *([] if row["seconds"] is None else [row["seconds"]])]
        assert numbers and all(isinstance(n, (int, float)) and math.isfinite(n) and n > 0 for n in numbers), row

    # every precision is named, the original's in both
    assert [rows[key]["precision"] for key in EXTRACT_KEYS] == ["bfloat16", "bfloat16", "float32", "bfloat16"]
    assert [rows[key]["precision"] for key in RATIO_KEYS] == ["bfloat16 / bfloat16", "bfloat16 / float32",
                                                              "bfloat16 / bfloat16"]
    # 2 videos of at most 8 frames each, the same count for every pipeline
    for key in EXTRACT_KEYS:
        row = rows[key]
        assert set(row["values"]) == {"videos/s", "frames/s"}
        assert row["values"]["videos/s"] == pytest.approx(2 / row["seconds"])
        assert 1 <= row["values"]["frames/s"] / row["values"]["videos/s"] <= 8
        assert "2 videos x 8 frames" in row["measurement"]
    assert rows["extract.ratio.ours_floor"]["values"]["x"] == pytest.approx(
        rows["extract.ours"]["values"]["videos/s"] / rows["extract.floor"]["values"]["videos/s"])
    assert rows["extract.ratio.ours_original.float32"]["values"]["x"] == pytest.approx(
        rows["extract.original.float32"]["seconds"] / rows["extract.ours"]["seconds"])

    # the fused step: 4 samples of 628 cue rows + 6 start/end tokens + at least 200 text tokens
    train = rows["train.step"]
    seq_len = int(train["measurement"].split("batch 4 x ")[1].split(" tokens")[0])
    assert seq_len >= 628 + 6 + 200
    assert train["values"]["tokens/s"] == pytest.approx(4 * seq_len / train["seconds"])
    assert 0 < train["values"]["peak GiB RSS"] < 64
    batched, sequential = rows["generate.batched"], rows["generate.sequential"]
    assert batched["values"]["tokens/s"] == pytest.approx(4 * 8 / batched["seconds"])
    assert sequential["values"]["tokens/s"] == pytest.approx(4 * 8 / sequential["seconds"])
    assert rows["generate.ratio.batched_sequential"]["values"]["x"] == pytest.approx(
        sequential["seconds"] / batched["seconds"])
    assert set(report["step_seconds"]) == set(STEPS)


def test_budget_guard_names_every_skipped_step(gpu_check, capsys):
    code, lines, report = run(gpu_check, capsys, "--budget-s", "0")

    assert code == 0 and report["rows"] == [] and report["failed"] == {}
    skipped = [line.removeprefix("skipped: ").split(" ")[0] for line in lines if line.startswith("skipped: ")]
    assert skipped == ["extract.setup", "extract.floor", "extract.ours", "extract.original.float32",
                       "extract.original.bfloat16", "build", "train", "generate"]
    assert [item.split(" ")[0] for item in report["skipped"]] == skipped
