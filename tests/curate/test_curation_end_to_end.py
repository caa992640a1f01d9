"""The curation chained: NTU clips -> person-crop -> stitch -> caption (tiny BLIP-2) -> describe -> qa (scripted
Llamas) -> an instruction file the project's loader reads; rerunning every step redoes nothing."""

from __future__ import annotations

import json

import numpy as np

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.data.instructions import read_instruction_file
from text_fixtures import DESCRIPTION_REPLY, QA_REPLY, register_text_plugin, save_scripted_lm, write_clip


@pytest.fixture(autouse=True)
def text_commands(llavidal_plugins):
    register_text_plugin(llavidal_plugins)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_caption_describe_qa_chain_gives_a_training_file(tmp_path):
    from llavidal_object.testing import save_tiny_blip2

    blip2 = save_tiny_blip2(tmp_path / "blip2", answer_word="cup")
    describe_lm = save_scripted_lm(tmp_path / "describe-lm", DESCRIPTION_REPLY)
    qa_lm = save_scripted_lm(tmp_path / "qa-lm", QA_REPLY)
    ids = ("001_video_001", "001_video_002")
    for seed, video_id in enumerate(ids):
        write_clip(tmp_path / "stitched" / f"{video_id}.mp4", frames=4, fps=4, seed=seed)
    mapping = tmp_path / "action_mapping.json"
    mapping.write_text(json.dumps({i: "Actions performed by the person in the video are drink water." for i in ids}))
    llm = ["--device", "cpu", "--dtype", "float32", "--max-tokens", "40", "--no-progress"]

    assert main(["curate", "caption", str(tmp_path / "stitched"), "--out", str(tmp_path / "captions"),
                 "--model", str(blip2), "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "2",
                 "--no-progress"]) == 0
    assert main(["curate", "describe", "--captions", str(tmp_path / "captions"), "--action-mapping", str(mapping),
                 "--out", str(tmp_path / "described"), "--llm", str(describe_lm), *llm]) == 0
    assert main(["curate", "qa", "--captions", str(tmp_path / "captions" / "captions.json"), "--descriptions",
                 str(tmp_path / "described" / "dense_descriptions.json"), "--out", str(tmp_path / "qa"),
                 "--llm", str(qa_lm), "--cues", "video", *llm]) == 0
    samples = read_instruction_file(tmp_path / "qa" / "adlx_QAs_for_training.json")
    assert sorted({s.video_id for s in samples}) == list(ids) and len(samples) == 4
    assert all(s.mentions("<video>") for s in samples)



def test_the_five_steps_from_ntu_clips_to_a_training_file(tmp_path, ntu_layout, llavidal_plugins):
    import llavidal_curate.plugin
    from ntu_bodies import make_body
    from llavidal_object.testing import save_tiny_blip2

    llavidal_plugins.unregister("curate-text")  # the whole plugin, as pip installs it, instead of its text half
    llavidal_plugins.register(llavidal_curate.plugin, name="curate", distribution="llavidal-curate", version="0.1.0")
    videos, skeletons, write = ntu_layout
    for index, name in enumerate(("S001C001P001R001A001", "S001C001P001R001A002", "S001C001P001R001A029")):
        write(name, [make_body(1, [0, 1, 2], np.full((3, 25, 2), 40.0 + 10 * index))], num_frames=3)
    mapping = tmp_path / "video_mapping.json"
    mapping.write_text(json.dumps({"001_video_001": ["S001C001P001R001A001_rgb.avi", "S001C001P001R001A002_rgb.avi"],
                                   "001_video_002": ["S001C001P001R001A029_rgb.avi"]}))
    actions = tmp_path / "action_mapping.json"
    actions.write_text(json.dumps({"001_video_001": "Actions performed by the person in the video are drink water, eat meal.",
                                   "001_video_002": "Actions performed by the person in the video are play with phone/tablet."}))
    blip2 = save_tiny_blip2(tmp_path / "blip2", answer_word="cup")
    describe_lm = save_scripted_lm(tmp_path / "describe-lm", DESCRIPTION_REPLY)
    qa_lm = save_scripted_lm(tmp_path / "qa-lm", QA_REPLY)
    llm = ["--device", "cpu", "--dtype", "float32", "--max-tokens", "40", "--no-progress"]
    steps = [
        ["curate", "person-crop", "--videos", str(videos), "--skeletons", str(skeletons), "--out", str(tmp_path / "pag")],
        ["curate", "stitch", "--mapping", str(mapping), "--actions", str(actions), "--clips", str(tmp_path / "pag"),
         "--out", str(tmp_path / "stitched")],
        ["curate", "caption", str(tmp_path / "stitched"), "--out", str(tmp_path / "captions"), "--model", str(blip2),
         "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "2", "--no-progress"],
        ["curate", "describe", "--captions", str(tmp_path / "captions"), "--action-mapping", str(actions),
         "--out", str(tmp_path / "described"), "--llm", str(describe_lm), *llm],
        ["curate", "qa", "--captions", str(tmp_path / "captions" / "captions.json"), "--descriptions",
         str(tmp_path / "described" / "dense_descriptions.json"), "--out", str(tmp_path / "qa"), "--llm", str(qa_lm),
         "--cues", "video", *llm],
    ]
    for step in steps:
        assert main(step) == 0, step[:2]
    samples = read_instruction_file(tmp_path / "qa" / "adlx_QAs_for_training.json")
    assert sorted({s.video_id for s in samples}) == ["001_video_001", "001_video_002"]
    assert all(s.mentions("<video>") for s in samples)
    parts = json.loads((tmp_path / "stitched" / "001_video_001.json").read_text())["parts"]
    assert [part["action_id"] for part in parts] == ["A001", "A002"]

    merged = ("captions.json", "dense_descriptions.json", "adlx_QAs_for_training.json")  # gathered from per-video files
    written = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()
               and path.suffix in (".avi", ".mp4", ".json", ".skeleton") and path.name not in merged
               and "blip2" not in path.parts and not path.parent.name.endswith("-lm")}
    contents = {name: next(tmp_path.rglob(name)).read_text() for name in merged}
    for step in steps:  # a rerun of any step finishes without redoing a finished video
        assert main(step) == 0, step[:2]
    assert {path: path.stat().st_mtime_ns for path in written} == written
    assert {name: next(tmp_path.rglob(name)).read_text() for name in merged} == contents
