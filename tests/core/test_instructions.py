"""Instruction files (ADL-X JSON / JSON lines) and the Video-ChatGPT converter command."""

import json

import pytest

from llavidal_core.cli import main
from llavidal_core.data.instructions import (
    InstructionFormatError,
    convert_videoinstruct,
    read_instruction_file,
)

ADLX_RECORD = {
    "id": "001_video_001",
    "video": "001_video_001.pkl",
    "object": "001_video_001_object.pkl",
    "pose": "001_video_001_pose.pkl",
    "conversations": [
        {"from": "human", "value": "<video><object><human_pose>\nWhat does the person do?"},
        {"from": "gpt", "value": "The person drinks water."},
    ],
}


def test_reads_adlx_json_list_and_json_lines(tmp_path):
    as_list = tmp_path / "train.json"
    as_list.write_text(json.dumps([ADLX_RECORD, ADLX_RECORD | {"id": 7}]))
    as_lines = tmp_path / "train.jsonl"
    as_lines.write_text("\n".join(json.dumps(r) for r in [ADLX_RECORD, ADLX_RECORD | {"id": 7}]) + "\n\n")
    for path in (as_list, as_lines):
        samples = read_instruction_file(path)
        assert [s.sample_id for s in samples] == ["001_video_001", "7"]
        first = samples[0]
        assert first.feature_files == {"video": "001_video_001.pkl", "object": "001_video_001_object.pkl",
                                       "pose": "001_video_001_pose.pkl"}
        assert first.video_id == "001_video_001"
        assert first.mentions("<human_pose>") and not first.mentions("<imu>")


@pytest.mark.parametrize("video, video_id", [
    ("001_video_001.pkl", "001_video_001"),
    ("P03/P03T01C05/clips/clip_1.mp4", "P03/P03T01C05/clips/clip_1"),
    ("Makecoffee.Pourgrains_p18_r01_v13_c03.mp4", "Makecoffee.Pourgrains_p18_r01_v13_c03"),
    ("/data/videos/clip_1.mp4", "clip_1"),
    (None, "the-sample"),
])
def test_the_video_id_is_the_video_field_without_its_suffix(tmp_path, video, video_id):
    record = {key: value for key, value in ADLX_RECORD.items() if key != "video"} | {"id": "the-sample"}
    if video is not None:
        record["video"] = video
    path = tmp_path / "train.json"
    path.write_text(json.dumps([record]))
    assert read_instruction_file(path)[0].video_id == video_id


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "a"}, r"missing field\(s\) \['conversations'\]"),
        (ADLX_RECORD | {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
         "turn 0 must be"),
        (ADLX_RECORD | {"conversations": [{"from": "human", "value": "x"}]}, "'conversations' must be a list"),
        (ADLX_RECORD | {"pose": 3}, "feature field 'pose'"),
        (ADLX_RECORD | {"video": "../features/001_video_001.pkl"}, r"\.\./features/001_video_001.pkl.*'\.\.' segment"),
        ("not an object", "expected a JSON object"),
    ],
)
def test_malformed_records_name_their_index(tmp_path, record, message):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([ADLX_RECORD, record]))
    with pytest.raises(InstructionFormatError, match=rf"train.json: record 1: {message}"):
        read_instruction_file(path)


def test_malformed_json_line_names_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ADLX_RECORD) + "\n" + '{"id": "x", "conversations": [\n')
    with pytest.raises(InstructionFormatError, match=r"train.jsonl: line 2 is not valid JSON"):
        read_instruction_file(path)


def test_videoinstruct_conversion_follows_the_original_rule():
    records = [{"video_id": f"v{i}", "q": f"question {i}?", "a": f"answer {i}"} for i in range(4)]
    converted = convert_videoinstruct(records, keep_video_ids={"v0", "v1", "v3"})
    assert [c["id"] for c in converted] == ["v0", "v1", "v3"]
    assert converted[0]["conversations"][0]["value"] == "question 0?\n<video>"
    assert converted[1]["conversations"][0]["value"] == "<video>\nquestion 1?"
    assert converted[2]["conversations"][0]["value"] == "<video>\nquestion 3?"  # parity of the input index
    assert converted[0]["video"] == "v0.pkl" and converted[0]["conversations"][1] == {"from": "gpt",
                                                                                       "value": "answer 0"}


def test_convert_instructions_command(tmp_path, capsys, llavidal_plugins):
    source = tmp_path / "videoinstruct.json"
    source.write_text(json.dumps([{"video_id": "v0", "q": "q0", "a": "a0"}, {"video_id": "v1", "q": "q1", "a": "a1"}]))
    features = tmp_path / "clip_features"
    features.mkdir()
    (features / "v1.pkl").write_bytes(b"")
    (features / "v0_pose.pkl").write_bytes(b"")  # another cue's file: v0 has no video features
    out = tmp_path / "out" / "train.json"
    assert main(["convert", "instructions", str(source), "--out", str(out), "--features", str(features)]) == 0
    written = json.loads(out.read_text())
    assert [r["id"] for r in written] == ["v1"]
    assert read_instruction_file(out)[0].conversation[0]["value"] == "<video>\nq1"
    assert "1 dropped" in capsys.readouterr().out
    source.write_text('[{"video_id": "v0", "q": 1}]')
    assert main(["convert", "instructions", str(source), "--out", str(out)]) == 1
    assert "record 0" in capsys.readouterr().err


def test_convert_instructions_keeps_videos_with_features_in_sub_folders(tmp_path, llavidal_plugins):
    import torch

    from llavidal_core.features import FeatureStore

    ids = ["P03/P03T01C05/clips/clip_1", "P04/P04T02C01/clips/clip_1", "P05/clip_1"]
    source = tmp_path / "videoinstruct.json"
    source.write_text(json.dumps([{"video_id": video_id, "q": "q", "a": "a"} for video_id in ids]))
    store = FeatureStore(tmp_path / "features")
    store.write(ids[0], "video", torch.zeros(1))
    store.write(ids[1], "video", torch.zeros(1))
    store.write(ids[2], "pose", torch.zeros(1))  # no video features
    out = tmp_path / "train.json"
    assert main(["convert", "instructions", str(source), "--out", str(out), "--features", str(store.root)]) == 0
    samples = read_instruction_file(out)
    assert [sample.video_id for sample in samples] == ids[:2]
    assert samples[0].feature_files["video"] == "P03/P03T01C05/clips/clip_1.pkl"


def test_convert_instructions_drops_only_the_video_of_a_corrupt_feature_file(tmp_path, capsys, llavidal_plugins):
    import torch

    from llavidal_core.features import FeatureStore

    source = tmp_path / "videoinstruct.json"
    source.write_text(json.dumps([{"video_id": f"v{i}", "q": "q", "a": "a"} for i in range(3)]))
    store = FeatureStore(tmp_path / "features")
    for index in range(3):
        store.write(f"v{index}", "video", torch.zeros(1))
    store.path_for("v1").write_bytes(b"not safetensors")
    out = tmp_path / "train.json"
    assert main(["convert", "instructions", str(source), "--out", str(out), "--features", str(store.root)]) == 0
    assert [sample.video_id for sample in read_instruction_file(out)] == ["v0", "v2"]
    assert "v1.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"a": ' * 100000 + "1" + "}" * 100000,
                                  "[" + "9" * 5000 + "]"])
def test_hostile_json_is_a_format_error_naming_the_file(tmp_path, text, capsys, llavidal_plugins):
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(InstructionFormatError, match="deep.json: .*not valid JSON"):
        read_instruction_file(path)
    assert main(["convert", "instructions", str(path), "--out", str(tmp_path / "out.json")]) == 1
    assert "deep.json: not valid JSON" in capsys.readouterr().err
