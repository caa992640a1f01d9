"""`llavidal prepare ...`: from small inputs laid out as the datasets are, exactly the relative paths the
benchmark files reference (checked with the core's ``eval mcq --check`` summary and the TSU clip naming)."""

import json
import os

import pytest

from llavidal_core.commands.evaluation import check_summary
from llavidal_core.evaluation.description_sources import clips_among
from llavidal_core.evaluation.mcq_files import load_mcq_file


def _frames(path):
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def _csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("event,start_frame,end_frame\n" + "".join(f"{e},{s},{t}\n" for e, s, t in rows))


def test_tsu_tc_clips_have_the_legacy_file_paths_and_resume(tmp_path):
    from llavidal_curate.prepare_tsu import group_actions, read_actions, run_prepare_tsu_tc
    from llavidal_video.testing.videos import write_test_video

    videos = tmp_path / "Videos_MP4"
    videos.mkdir()
    write_test_video(videos / "P03T01C05.mp4", num_frames=60, height=32, width=32, fps=10)
    write_test_video(videos / "P04T02C01.mp4", num_frames=30, height=32, width=32, fps=10)
    annotations = tmp_path / "Annotation"
    # 10 fps: groups of 5, then a group closed at 4 by the 60 s rule is kept; the tail of 2 is dropped
    _csv(annotations / "P03" / "P03T01C05.csv",
         [("Walk", 0, 2), ("Sit", 2, 4), ("Eat", 4, 6), ("Drink", 6, 8), ("Leave", 8, 10),
          ("Walk", 10, 12), ("Sit", 12, 14), ("bad", "x", 1), ("Eat", 14, 16), ("Drink", 16, 18),
          ("Far", 18, 700), ("Walk", 40, 42)])
    _csv(annotations / "P04" / "P04T02C01.csv", [("Walk", 0, 3), ("Sit", 3, 6), ("Eat", 6, 9), ("Drink", 9, 12)])
    _csv(annotations / "P05" / "P05T01C01.csv", [("Walk", 0, 3)])  # no video: reported
    assert [len(c) for c in group_actions(read_actions(annotations / "P03" / "P03T01C05.csv"), 10.0)] == [5, 4]

    questions = tmp_path / "TSU-TC.json"
    questions.write_text(json.dumps([
        {"video_path": path, "question": "What comes next?", "options": {"A": "Walk", "B": "Sit"},
         "correct_answer": "A"}
        for path in ("P03/P03T01C05/clips/clip_1.mp4", "P03/P03T01C05/clips/clip_2.mp4",
                     "P04/P04T02C01/clips/clip_1.mp4")]))
    out = tmp_path / "TSU_TC_videos"
    assert run_prepare_tsu_tc(annotations, videos, out) == 3
    summary = check_summary(load_mcq_file(questions), out)
    assert (summary["num_videos"], summary["videos_found"]) == (3, 3)
    assert not (out / "P03/P03T01C05/clips/clip_3.mp4").exists()
    assert _frames(out / "P03/P03T01C05/clips/clip_1.mp4") == 10
    assert _frames(out / "P03/P03T01C05/clips/clip_2.mp4") == 8
    metadata = json.loads((out / "P03/P03T01C05/metadata.json").read_text())
    assert metadata["metadata"] == {"total_clips": 2, "fps": 10.0, "total_actions": 9}
    assert metadata["clips"][1]["time_info"] == {"start_frame": 10, "end_frame": 18, "duration_frames": 8,
                                                 "duration_seconds": 0.8}
    assert [json.loads(line)["video_id"] for line in (out / "errors.jsonl").read_text().splitlines()] == [
        "P05/P05T01C01"]

    clip = out / "P04/P04T02C01/clips/clip_1.mp4"
    stamp = clip.stat().st_mtime_ns
    os.remove(out / "P03/P03T01C05/metadata.json")  # killed before the video was finished
    os.remove(out / "P03/P03T01C05/clips/clip_2.mp4")
    assert run_prepare_tsu_tc(annotations, videos, out) == 3
    assert clip.stat().st_mtime_ns == stamp
    assert (out / "P03/P03T01C05/clips/clip_2.mp4").is_file() and (out / "P03/P03T01C05/metadata.json").is_file()


def test_tsu_descriptions_clip_names_and_resume(tmp_path):
    from llavidal_curate.prepare_tsu import run_prepare_tsu_descriptions
    from llavidal_video.testing.videos import write_test_video

    videos = tmp_path / "Videos_MP4"
    videos.mkdir()
    write_test_video(videos / "P02T01C06.mp4", num_frames=25, height=32, width=32, fps=10)  # 2.5 s
    write_test_video(videos / "P10T03C03.mp4", num_frames=8, height=32, width=32, fps=10)
    (videos / "P11T01C01.mp4").write_bytes(b"not a video")
    out = tmp_path / "TSU_Descriptions_videos"
    assert run_prepare_tsu_descriptions(videos, out, clip_seconds=1.0) == 3
    names = sorted(p.name for p in out.glob("*.mp4"))
    assert clips_among(names, "P02T01C06") == ["P02T01C06_clip1.mp4", "P02T01C06_clip2.mp4", "P02T01C06_clip3.mp4"]
    assert clips_among(names, "P10T03C03") == ["P10T03C03_clip1.mp4"]
    assert [_frames(out / f"P02T01C06_clip{i}.mp4") for i in (1, 2, 3)] == [10, 10, 5]
    assert (out / "logs" / "P02T01C06_log.txt").read_text().startswith("Original Video:")

    stamp = (out / "P10T03C03_clip1.mp4").stat().st_mtime_ns
    os.remove(out / "logs" / "P02T01C06_log.txt")
    os.remove(out / "P02T01C06_clip3.mp4")
    assert run_prepare_tsu_descriptions(videos, out, clip_seconds=1.0) == 3
    assert (out / "P10T03C03_clip1.mp4").stat().st_mtime_ns == stamp
    assert _frames(out / "P02T01C06_clip3.mp4") == 5


def test_smarthome_crops_have_the_legacy_file_names(tmp_path):
    from llavidal_curate.prepare_smarthome import person_crop_box, run_prepare_smarthome
    from llavidal_video.testing.videos import write_test_video

    # two people: the box around both, grown by 48 on every side; a third (lowest score) ignored
    assert person_crop_box([[10, 20, 30, 60], [50, 5, 70, 40], [0, 0, 200, 200]]) == ((-38, -43), (118, 108))
    assert person_crop_box([]) is None

    videos = tmp_path / "mp4"
    videos.mkdir()
    names = ("Cook.Cleandishes_p02_r00_v02_c03", "Drink.Frombottle_p03_r01_v05_c01", "Eat.Snack_p04_r00_v01_c02")
    for name in names:
        write_test_video(videos / f"{name}.mp4", num_frames=6, height=120, width=160, fps=10)
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / f"{names[0]}.json").write_text(json.dumps([[[40, 30, 90, 100, 0.9]], [], [[40, 30, 90, 100, 0.9],
                                                        [100, 20, 150, 110, 0.8]]]))
    (boxes / f"{names[1]}.json").write_text(json.dumps([[[0, 0, 159, 119]]] * 6))
    (boxes / f"{names[2]}.json").write_text(json.dumps([[]] * 6))  # nobody: reported
    questions = tmp_path / "Smarthome-AR.json"
    questions.write_text(json.dumps({str(i): {
        "video_id": f"/data/smarthome/cropped224x224_better/mp4/{name}.mp4",
        "question": "Pick the correct action: ", "choices": {"1": "cleaning dishes", "2": "drinking"},
        "ground_truth": "drinking"} for i, name in enumerate(names[:2])}))
    out = tmp_path / "cropped"
    assert run_prepare_smarthome(videos, out, f"annotations:{boxes}") == 3
    summary = check_summary(load_mcq_file(questions), out)
    assert (summary["num_videos"], summary["videos_found"]) == (2, 2)
    assert _frames(out / f"{names[0]}.mp4") == 2  # frames without a person dropped
    assert _frames(out / f"{names[1]}.mp4") == 6
    assert not (out / f"{names[2]}.mp4").exists()

    stamp = (out / f"{names[0]}.mp4").stat().st_mtime_ns
    assert run_prepare_smarthome(videos, out, f"annotations:{boxes}") == 3
    assert (out / f"{names[0]}.mp4").stat().st_mtime_ns == stamp


def test_smarthome_with_a_tiny_transformers_detector(tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch
    from llavidal_curate.prepare_smarthome import TransformersDetector
    from llavidal_video.testing.videos import synthetic_video_frames

    torch.manual_seed(0)
    config = transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False,
        backbone_config=transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 16], depths=[1, 1, 1, 1],
                                                  out_features=["stage4"]),
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=5, id2label={0: "person"},
        label2id={"person": 0})
    model_dir = tmp_path / "detr"
    transformers.DetrForObjectDetection(config).save_pretrained(model_dir)
    transformers.DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(model_dir)
    detector = TransformersDetector(str(model_dir), threshold=0.0, device="cpu")
    frame = synthetic_video_frames(1, 48, 64)[0]
    boxes = detector.video("clip")(0, frame)
    assert boxes.shape == (5, 4)  # threshold 0, one label: every query is a person box, in pixels
    assert (boxes[:, 2] >= boxes[:, 0]).all() and boxes.max() <= 64 + 1e-3
