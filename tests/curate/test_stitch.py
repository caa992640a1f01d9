"""`llavidal curate stitch`: parts concatenated in order, missing/unreadable parts reported and left out,
the action sequence written beside the video, the real video_mapping.json read, reruns skip done videos."""

import json

import pytest

from llavidal_curate.stitch import run_stitch, sentence_actions


def _frames(path):
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def test_stitch_keeps_order_reports_missing_and_resumes(tmp_path):
    from llavidal_video.testing.videos import write_test_video

    clips = tmp_path / "crop" / "rgb"
    clips.mkdir(parents=True)
    write_test_video(clips / "S001C001P001R001A001_rgb.avi", num_frames=4, height=32, width=32, codec="mpeg4")
    write_test_video(clips / "S001C001P001R001A027_rgb.avi", num_frames=6, height=32, width=32, codec="mpeg4")
    (clips / "S001C001P001R001A030_rgb.avi").write_bytes(b"broken")
    mapping = tmp_path / "video_mapping.json"
    mapping.write_text(json.dumps({
        "001_video_001": ["S001C001P001R001A001_rgb.avi", "S009C001P001R001A099_rgb.avi",
                          "S001C001P001R001A030_rgb.avi", "S001C001P001R001A027_rgb.avi"],
        "001_video_002": ["S001C001P001R001A027_rgb.avi"],
        "001_video_003": ["S009C001P001R001A099_rgb.avi"],
    }))
    actions = tmp_path / "action_mapping.json"
    actions.write_text(json.dumps({"001_video_001": "Actions performed by the person in the video are drink water, "
                                                    "clapping, hopping, jump up."}))
    out = tmp_path / "stitched"
    assert run_stitch(mapping, tmp_path / "crop", out, actions) == 3
    assert _frames(out / "001_video_001.mp4") == 10
    record = json.loads((out / "001_video_001.json").read_text())
    assert [(p["action_id"], p["action"], p["start_frame"], p["end_frame"]) for p in record["parts"]] == [
        ("A001", "drink water", 0, 4), ("A027", "jump up", 4, 10)]
    assert [s["clip"] for s in record["skipped"]] == ["S009C001P001R001A099_rgb.avi", "S001C001P001R001A030_rgb.avi"]
    assert json.loads((out / "001_video_002.json").read_text())["parts"][0]["action"] is None
    assert not (out / "001_video_003.mp4").exists()
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["video_id"] for e in errors} == {"001_video_001", "001_video_003"}

    stamp = (out / "001_video_002.mp4").stat().st_mtime_ns
    (out / "001_video_001.json").unlink()  # killed between the video and its sidecar: redone
    assert run_stitch(mapping, tmp_path / "crop", out, actions) == 3
    assert (out / "001_video_002.mp4").stat().st_mtime_ns == stamp
    assert (out / "001_video_001.json").is_file()


def test_real_mapping_files_line_up(shared_data):
    from llavidal_curate.stitch import read_mapping

    videos = read_mapping(shared_data / "adlx" / "video_mapping.json", "video mapping")
    sentences = read_mapping(shared_data / "adlx" / "action_mapping.json", "action mapping")
    assert videos["001_video_001"][0] == "S011C002P001R001A001_rgb.avi"
    assert sentence_actions(sentences["001_video_001"])[0] == "drink water"
    matching = sum(len(sentence_actions(sentences[name]) or []) == len(parts)
                   for name, parts in videos.items() if name in sentences)
    assert matching > 0.9 * len(videos)


def test_bad_mapping_is_a_usage_error(tmp_path):
    from llavidal_core.errors import UsageError

    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="m.json"):
        run_stitch(tmp_path / "m.json", tmp_path, tmp_path / "out")
