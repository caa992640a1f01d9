"""``llavidal curate caption``: the original's frame choice, a real tiny BLIP-2 captioning real clips, resume,
and a broken video reported while the others are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llavidal_core.cli import main
from llavidal_curate.captions import caption_frame_indices
from text_fixtures import register_text_plugin, write_clip


@pytest.fixture(autouse=True)
def text_commands(llavidal_plugins):
    register_text_plugin(llavidal_plugins)


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory):
    from llavidal_object.testing import save_tiny_blip2

    return save_tiny_blip2(tmp_path_factory.mktemp("blip2"), answer_word="cup")


def test_frame_indices_follow_the_original():
    # step3: int(frames / fps / 0.5) captions, np.linspace(0, frames - 1, n, dtype=int)
    assert caption_frame_indices(100, 25.0) == list(np.linspace(0, 99, 8, dtype=int))
    assert caption_frame_indices(5, 30.0) == [0]  # shorter than half a second: one caption
    with pytest.raises(ValueError, match="frame rate"):
        caption_frame_indices(10, 0.0)
    with pytest.raises(ValueError, match="no frames"):
        caption_frame_indices(0, 25.0)


def test_caption_writes_resumes_and_reports_a_broken_video(tmp_path, blip2_dir):
    videos = tmp_path / "stitched"
    write_clip(videos / "001_video_001.mp4", frames=8, fps=4)   # 2 s -> 4 captions
    write_clip(videos / "001_video_002.mp4", frames=3, fps=4, seed=1)  # 0.75 s -> 1 caption
    (videos / "001_video_003.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "captions"
    args = ["curate", "caption", str(videos), "--out", str(out), "--model", str(blip2_dir), "--device", "cpu",
            "--dtype", "float32", "--batch-size", "3", "--max-new-tokens", "3", "--no-progress"]

    assert main(args) == 3
    first = json.loads((out / "001_video_001.json").read_text())
    assert first["frame_indices"] == [0, 2, 4, 7]
    assert first["captions"] == ["cup cup cup"] * 4
    assert json.loads((out / "001_video_002.json").read_text())["captions"] == ["cup cup cup"]
    assert not (out / "001_video_003.json").exists()
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in errors] == ["001_video_003"] and "001_video_003.mp4" in errors[0]["path"]
    merged = json.loads((out / "captions.json").read_text())
    assert merged == {"001_video_001": ["cup cup cup"] * 4, "001_video_002": ["cup cup cup"]}

    written = {p.name: p.stat().st_mtime_ns for p in out.glob("001_*.json")}
    (videos / "001_video_003.mp4").unlink()
    assert main(args) == 0  # nothing left to do: no video captioned again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("001_*.json")} == written


def test_caption_rejects_an_unknown_dtype(tmp_path, blip2_dir):
    write_clip(tmp_path / "v" / "a.mp4", frames=2, fps=4)
    code = main(["curate", "caption", str(tmp_path / "v"), "--out", str(tmp_path / "o"), "--model", str(blip2_dir),
                 "--device", "cpu", "--dtype", "float33", "--no-progress"])
    assert code == 3
    assert "unknown dtype" in (tmp_path / "o" / "errors.jsonl").read_text()
