"""Every ADLMCQ question resolves to the video and the prompt the original's evaluation script uses.

The expected values were recorded by running the original scripts (ADL-X/LLAVIDAL
``evaluation/ADL-X/legacy/multiproc_eval_*.py``) with the model replaced by a recorder
(tests/fidelity/make_original_expected.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llavidal_core.cli import main
from llavidal_core.evaluation.mcq_files import load_mcq_file

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads(gzip.decompress((DATA / "expected_adlmcq.json.gz").read_bytes()))["files"]
IN_SHARED_DATA = ("LEGACY-Charades-AR.json", "LEGACY-LEMMA-TC.json")


@pytest.fixture(params=sorted(EXPECTED))
def legacy_file(request, tmp_path) -> Path:
    """The legacy file: read in place from ../shared/data, or unpacked from tests/fidelity/data."""
    name = request.param
    if name in IN_SHARED_DATA:
        shared = request.getfixturevalue("shared_data")
        return shared / "adlmcq" / name
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / "legacy_adlmcq" / f"{name}.gz").read_bytes()))
    return path


def test_each_question_gets_the_originals_video_and_prompt(legacy_file):
    expected = EXPECTED[legacy_file.name]
    questions = load_mcq_file(legacy_file).questions
    assert len(questions) == len(expected)
    assert [[q.video_path, q.prompt] for q in questions] == expected


def test_distinct_videos_keep_distinct_ids(legacy_file):
    questions = load_mcq_file(legacy_file).questions
    paths = {q.video_path for q in questions}
    assert len({q.video_id for q in questions}) == len(paths)


def test_tsu_clips_in_different_folders_are_different_videos(tmp_path):
    path = tmp_path / "LEGACY-TSU-TC.json"
    path.write_bytes(gzip.decompress((DATA / "legacy_adlmcq" / "LEGACY-TSU-TC.json.gz").read_bytes()))
    questions = load_mcq_file(path).questions
    clip_1 = {q.video_id for q in questions if q.video_path.endswith("/clip_1.mp4")}
    assert len(clip_1) > 40 and "P17/P17T11C06/clips/clip_1" in clip_1


def test_check_with_videos_finds_every_video(legacy_file, tmp_path, capsys):
    videos = tmp_path / "videos"
    expected_paths = sorted({path for path, _ in EXPECTED[legacy_file.name]})
    for relative in expected_paths:
        (videos / relative).parent.mkdir(parents=True, exist_ok=True)
        (videos / relative).touch()
    assert main(["eval", "mcq", "--check", str(legacy_file), "--videos", str(videos)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_questions"] == len(EXPECTED[legacy_file.name])
    assert report["num_videos"] == report["videos_found"] == len(expected_paths)
    assert report["videos_missing"] == 0 and report["first_missing"] == []

    (videos / expected_paths[0]).unlink()
    assert main(["eval", "mcq", "--check", str(legacy_file), "--videos", str(videos)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["videos_missing"] == 1 and report["first_missing"] == [expected_paths[0]]


def test_prompts_print_one_json_line_per_question(legacy_file, capsys):
    assert main(["eval", "mcq", "--check", str(legacy_file), "--prompts"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [[line["video_path"], line["prompt"]] for line in lines] == EXPECTED[legacy_file.name]
    first = lines[0]
    assert first["chat_prompt"].endswith(f"USER: {first['prompt']}\n<video> ASSISTANT:")


def test_prompts_into_a_reader_that_stops_early_exit_quietly(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "LEGACY-TSU-TC.json"
    path.write_bytes(gzip.decompress((DATA / "legacy_adlmcq" / "LEGACY-TSU-TC.json.gz").read_bytes()))
    command = [sys.executable, "-m", "llavidal_core", "eval", "mcq", "--check", str(path), "--prompts"]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = writer.stdout.readline()
    writer.stdout.close()  # as `| head -1` does
    assert writer.wait(timeout=120) == 0 and json.loads(first)["video_path"].endswith("clip_1.mp4")
    assert writer.stderr.read() == b""
