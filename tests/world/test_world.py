"""The miniature ADL world: files, determinism, caching, and truth that matches what is drawn."""

import json

import numpy as np
import pytest

pytest.importorskip("llavidal_pose", reason="the miniature world draws people with llavidal-pose")

from llavidal_core.data.instructions import read_instruction_file  # noqa: E402
from llavidal_core.evaluation.mcq_files import load_mcq_file  # noqa: E402
from llavidal_core.world.actions import ACTIONS_BY_NAME, OBJECTS  # noqa: E402
from llavidal_core.world.build import WorldConfig, build_world  # noqa: E402

SMALL = WorldConfig(num_performers=3, videos_per_performer=3, held_out_performers=1, frames_per_action=16)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"), SMALL)


def decode(path):
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_every_video_has_its_video_skeleton_and_objects(world):
    from llavidal_pose.skeleton import read_skeleton_file

    manifest = json.loads((world / "world.json").read_text())
    assert len(manifest["videos"]) == 9
    for video in manifest["videos"]:
        frames = decode(world / "videos" / f"{video['video_id']}.mp4")
        assert frames.shape == (32, 112, 112, 3)
        skeleton = read_skeleton_file(world / "skeletons" / f"{video['video_id']}.skeleton")
        assert skeleton.num_frames == 32 and skeleton.present.all()
        tracks = json.loads((world / "objects" / f"{video['video_id']}.json").read_text())
        expected = [ACTIONS_BY_NAME[a].held_object for a in video["actions"] if ACTIONS_BY_NAME[a].held_object]
        assert [t["label"] for t in tracks] == expected


def test_object_boxes_cover_the_drawn_object(world):
    manifest = json.loads((world / "world.json").read_text())
    checked = 0
    for video in manifest["videos"]:
        frames = decode(world / "videos" / f"{video['video_id']}.mp4").astype(int)
        for track in json.loads((world / "objects" / f"{video['video_id']}.json").read_text()):
            colour = np.array(OBJECTS[track["label"]].colour)
            for offset, box in enumerate(track["boxes"]):
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                patch = frames[track["first_frame"] + offset, y0:y1 + 1, x0:x1 + 1]
                close = np.abs(patch - colour).sum(-1) < 90  # H.264 shifts colours a little
                assert close.mean() > 0.3, (video["video_id"], track["label"], offset)
                checked += 1
    assert checked > 0


def test_instructions_and_questions_load_with_the_project_readers(world):
    samples = read_instruction_file(world / "train.json")
    assert len(samples) == 6 * 3 and {s.feature_files.keys() == {"video", "object", "pose"} for s in samples} == {True}
    questions = load_mcq_file(world / "mcq_test.json")
    assert questions.schema == "adlmcq" and len(questions.questions) == 3 * 2
    raw = json.loads((world / "mcq_test.json").read_text())
    for record, question in zip(raw, questions.questions):
        truth = ACTIONS_BY_NAME[question.choices[question.answer]]
        assert len(question.choices) == 4
        if truth.twin:
            assert truth.twin in question.choices.values()
            assert record["category"] == f"{truth.told_apart_by}-twin"
    held_out = {v["video_id"] for v in json.loads((world / "world.json").read_text())["videos"] if v["held_out"]}
    assert {q.video_id for q in questions.questions} == held_out
    assert not held_out & {s.video_id for s in samples}


def test_same_seed_same_world_and_reuse(world, tmp_path):
    again = build_world(tmp_path / "again", SMALL)
    files = sorted(path.relative_to(world) for path in world.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(again) for path in again.rglob("*") if path.is_file())
    assert {path.suffix for path in files} >= {".json", ".mp4", ".skeleton"}
    different = [str(path) for path in files if (again / path).read_bytes() != (world / path).read_bytes()]
    assert different == []  # byte for byte, the videos too
    stamp = (again / "world.json").stat().st_mtime_ns
    build_world(again, SMALL)
    assert (again / "world.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
