"""``llavidal extract object``: the shared extraction behaviour, run through the real CLI on real videos."""

import json
import os
import subprocess
import sys

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.features import FeatureStore

GOOD_VIDEOS = ["nasa_13013", "ntu_sample", "video_0"]


@pytest.fixture
def models(tiny_owlv2_dir, tiny_clip_dir):
    return ["--detector", str(tiny_owlv2_dir), "--encoder", str(tiny_clip_dir), "--num-frames", "3",
            "--frame-batch-size", "4"]


def test_extracts_a_folder_records_the_corrupt_video_and_resumes(object_plugin, models, shared_data, tmp_path,
                                                                 capsys):
    out = tmp_path / "features"
    code = main(["extract", "object", str(shared_data / "videos"), "--out", str(out), "--tags", "cup,phone",
                 "--max-objects", "2", *models])
    assert code == 3
    store = FeatureStore(out, create=False)
    assert store.video_ids() == GOOD_VIDEOS
    for video_id in GOOD_VIDEOS:
        features = store.read(video_id, "object")
        metadata = store.metadata(video_id, "object")
        n = int(metadata["num_objects"])
        assert features.shape == (n, 8, 32) and features.dtype == torch.float32 and n <= 2
        assert json.loads(metadata["tags"]) == ["cup", "phone"]
        trajectories = json.loads(metadata["trajectories"])
        assert len(trajectories) == n and all(len(t["feature_frames"]) == 8 for t in trajectories)
        assert metadata["detector"] == models[1] and metadata["encoder"] == models[3] and "tagger" not in metadata
        assert len(json.loads(metadata["frame_indices"])) == int(metadata["frames"])
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["video_id"], os.path.basename(e["path"])) for e in errors] == [("corrupted", "corrupted.mp4")]
    assert errors[0]["error"]
    assert "3 written, 0 already done, 1 failed" in capsys.readouterr().err

    code = main(["extract", "object", str(shared_data / "videos"), "--out", str(out), "--tags", "cup", *models])
    assert code == 3
    assert "0 written, 3 already done, 1 failed" in capsys.readouterr().err
    assert json.loads(store.metadata("video_0", "object")["tags"]) == ["cup", "phone"]  # not recomputed


def test_blip2_tags_a_listed_video_under_sharding(object_plugin, models, tiny_blip2_dir, shared_data, tmp_path,
                                                  monkeypatch, capsys):
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{shared_data / 'videos' / name}\n" for name in
                               ("video_0.mov", "nasa_13013.mp4", "ntu_sample.avi")))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "features"
    code = main(["extract", "object", str(listing), "--out", str(out), "--tagger", str(tiny_blip2_dir),
                 "--keyframes", "2", *models])
    assert code == 0
    store = FeatureStore(out, create=False)
    assert store.video_ids() == ["ntu_sample"]  # the second of the sorted paths
    metadata = store.metadata("ntu_sample", "object")
    assert json.loads(metadata["tags"]) == ["cup"]
    assert json.loads(metadata["tag_answers"]) and metadata["tagger"] == str(tiny_blip2_dir)
    assert "[rank 1/2]" in capsys.readouterr().err


def test_usage_errors_exit_2(object_plugin, models, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.mp4").write_bytes(b"")
    out = str(tmp_path / "out")
    assert main(["extract", "object", str(tmp_path / "a"), str(tmp_path / "b"), "--out", out, *models]) == 2
    assert "video id 'clip'" in capsys.readouterr().err
    assert main(["extract", "object", str(tmp_path / "a"), "--out", out, "--tags", " , ", *models]) == 2
    assert "--tags" in capsys.readouterr().err
    assert main(["extract", "object", str(tmp_path / "missing.mp4"), "--out", out, *models]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["extract", "object", str(tmp_path / "a"), "--out", out, "--max-objects", "-1", *models]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["extract", "object", "--out", out])
    assert exited.value.code == 2


def test_the_entry_point_registers_the_cue_and_command_without_importing_torch():
    script = (
        "import sys, json\n"
        "from llavidal_core.plugins import get_plugin_manager\n"
        "manager = get_plugin_manager()\n"
        "spec = manager.cue('object').spec\n"
        "print(json.dumps([spec.name, spec.tokens_per_item, spec.feature_dim, spec.distribution,\n"
        "                  ['extract', 'object'] in [list(c) for c in manager.commands()],\n"
        "                  [m for m in ('torch', 'numpy', 'transformers') if m in sys.modules]]))\n"
    )
    env = dict(os.environ, LLAVIDAL_LOAD_PLUGINS="llavidal-object", LLAVIDAL_STRICT_PLUGINS="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == ["object", 8, 512, "llavidal-object", True, []]


def test_a_video_without_objects_is_written_as_an_empty_tensor(object_plugin, models, tiny_blip2_dir, shared_data,
                                                               tmp_path):
    out = tmp_path / "features"
    code = main(["extract", "object", str(shared_data / "videos" / "video_0.mov"), "--out", str(out),
                 "--tagger", str(tiny_blip2_dir), "--stop-words", "cup", *models])
    assert code == 0
    store = FeatureStore(out, create=False)
    assert store.read("video_0", "object").shape == (0, 8, 32)
    metadata = store.metadata("video_0", "object")
    assert json.loads(metadata["tags"]) == [] and json.loads(metadata["trajectories"]) == []
    assert metadata["num_objects"] == "0"


def test_default_hub_ids_resolve_from_an_offline_cache(object_plugin, offline_hub, tiny_blip2_dir, tiny_owlv2_dir,
                                                       tiny_clip_dir, shared_data, tmp_path):
    from llavidal_object.models import DEFAULT_DETECTOR, DEFAULT_ENCODER, DEFAULT_TAGGER

    for repo_id, folder in ((DEFAULT_TAGGER, tiny_blip2_dir), (DEFAULT_DETECTOR, tiny_owlv2_dir),
                            (DEFAULT_ENCODER, tiny_clip_dir)):
        offline_hub.add(repo_id, folder)
    out = tmp_path / "features"
    code = main(["extract", "object", str(shared_data / "videos" / "video_0.mov"), "--out", str(out),
                 "--num-frames", "3", "--keyframes", "1"])
    assert code == 0
    metadata = FeatureStore(out, create=False).metadata("video_0", "object")
    assert (metadata["tagger"], metadata["detector"], metadata["encoder"]) == (
        DEFAULT_TAGGER, DEFAULT_DETECTOR, DEFAULT_ENCODER)
    assert json.loads(metadata["tags"]) == ["cup"]
