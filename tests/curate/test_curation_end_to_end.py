"""The curation chained: NTU clips -> person-crop -> stitch -> caption (tiny BLIP-2) -> describe -> qa (scripted
Llamas) -> an instruction file the project's loader reads; rerunning every step redoes nothing."""

from __future__ import annotations

import json

import numpy as np

import pytest

from llavidal_core.cli import main
from llavidal_core.data.instructions import read_instruction_file
from text_fixtures import DESCRIPTION_REPLY, QA_REPLY, register_text_plugin, save_scripted_lm, write_clip


@pytest.fixture(autouse=True)
def text_commands(llavidal_plugins):
    register_text_plugin(llavidal_plugins)


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

    # llavidal train takes the instruction file as it is, with video features of the stitched videos
    import llavidal_video.plugin
    from llavidal_core.testing.tiny_models import save_tiny_causal_lm
    from llavidal_core.training.recipe import recipe_from_dict
    from llavidal_core.training.runner import run_recipe
    from llavidal_video.testing.videos import save_tiny_clip_vision

    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version="0.1.0")
    clip = save_tiny_clip_vision(tmp_path / "clip", num_hidden_layers=2)
    assert main(["extract", "video", str(tmp_path / "stitched"), "--out", str(tmp_path / "features"), "--model",
                 str(clip), "--num-frames", "2", "--pool", "spatial", "--pool-stride", "16", "--workers", "0"]) == 0
    recipe = recipe_from_dict({
        "output_dir": str(tmp_path / "run"),
        "model": {"base": str(save_tiny_causal_lm(tmp_path / "llm")), "dtype": "float32"},
        "cues": [{"name": "video", "features": str(tmp_path / "features"), "spec": {"feature_dim": 32, "num_tokens": 2}}],
        "data": {"train": str(tmp_path / "qa" / "adlx_QAs_for_training.json"), "model_max_length": 512},
        "train": {"trainable": ["projectors"], "max_steps": 1, "batch_size": 2, "precision": "fp32",
                  "save": "adapter", "logging_steps": 1},
    })
    (output,) = run_recipe(recipe)
    assert (output / "adapter.safetensors").is_file()


def test_a_killed_caption_run_resumes_without_redoing_finished_videos(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from llavidal_object.testing import save_tiny_blip2

    blip2 = save_tiny_blip2(tmp_path / "blip2", answer_word="cup")
    ids = [f"00{i}_video_001" for i in range(8)]
    for seed, video_id in enumerate(ids):
        write_clip(tmp_path / "stitched" / f"{video_id}.mp4", frames=24, fps=4, seed=seed)
    out = tmp_path / "captions"
    command = ["curate", "caption", str(tmp_path / "stitched"), "--out", str(out), "--model", str(blip2),
               "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "2", "--no-progress"]
    env = dict(os.environ, LLAVIDAL_LOAD_PLUGINS="llavidal-curate", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "llavidal_core", *command], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(out.glob("*_video_001.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # killed as soon as its first video is written
    process.wait()
    finished = {path: path.stat().st_mtime_ns for path in out.glob("*_video_001.json")}
    assert 0 < len(finished) < len(ids), "the run must be killed part-way"

    assert main(command) == 0
    assert sorted(path.stem for path in out.glob("*_video_001.json")) == ids
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # finished videos were not redone
    assert not [path for path in out.rglob("*") if ".tmp" in path.name]
