"""``llavidal extract video``: outputs, errors.jsonl and exit codes, resume, sharding, the original's .pkl."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import llavidal_video.plugin
from llavidal_core.cli import main
from llavidal_core.features import FeatureStore
from llavidal_core.legacy_features import read_legacy_features
from llavidal_video.testing.videos import write_test_video
from llavidal_core.video_ids import legacy_video_id, video_id_for
from llavidal_video.sampling import segment_midpoint_indices
from llavidal_video.testing.videos import SHARED_DATA_VIDEOS

BIN = Path(sys.executable).parent


@pytest.fixture
def video_plugin(llavidal_plugins):
    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version="0.1.0")
    return llavidal_plugins


def extract(*args):
    return main(["extract", "video", *map(str, args)])


def outputs(folder, suffix=".safetensors"):
    return {path.name: (path.stat().st_mtime_ns, path.stat().st_ino) for path in Path(folder).glob(f"*{suffix}")}


def test_good_and_bad_files_in_one_run(video_plugin, tiny_clip_dir, clip_folder, videos, tmp_path, capsys):
    not_a_video = tmp_path / "inputs" / "readme.mp4"
    not_a_video.parent.mkdir()
    not_a_video.write_text("I am text, not a video\n")
    out = tmp_path / "features"
    args = [clip_folder, videos / "corrupted.mp4", not_a_video, "--out", out, "--model", tiny_clip_dir,
            "--num-frames", 8, "--workers", 2]
    assert extract(*args) == 3
    assert "3 written, 0 already done, 2 failed" in capsys.readouterr().err
    store = FeatureStore(out)
    assert store.video_ids() == ["long", "medium", "short"]
    features = store.read("long", "video")
    assert features.shape == (8 + 256, 32) and str(features.dtype) == "torch.float32"
    metadata = store.metadata("long", "video")
    assert metadata["encoder"] == str(tiny_clip_dir) and metadata["decoder"] == "decord"
    assert json.loads(metadata["frame_indices"]) == segment_midpoint_indices(130, 8)
    assert json.loads(metadata["spec"])["num_tokens"] == 264
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errors) == ["corrupted.mp4", "readme.mp4"]
    assert all(e["error"].startswith("cannot decode") for e in errors)

    before = outputs(out)
    assert extract(*args[:-2], "--workers", 0) == 3  # resumed: only the failures are tried again
    assert "0 written, 3 already done, 2 failed" in capsys.readouterr().err
    assert outputs(out) == before

    assert extract(clip_folder, "--out", out, "--model", tiny_clip_dir) == 0
    assert "nothing to do (3 already done)" in capsys.readouterr().err


def test_usage_errors_exit_2(video_plugin, tiny_clip_dir, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_test_video(tmp_path / "a" / "clip.mp4", num_frames=3)
    second = write_test_video(tmp_path / "b" / "clip.avi", num_frames=3, codec="mpeg4")
    assert extract(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--model", tiny_clip_dir) == 2
    message = capsys.readouterr().err
    assert "video id 'clip'" in message and str(first) in message and str(second) in message
    assert "first dot" not in message
    assert not (tmp_path / "out").exists()
    assert extract(tmp_path / "missing.mp4", "--out", tmp_path / "out") == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert extract(first, "--out", tmp_path / "out", "--preprocess", "reference", "--decoder", "pyav") == 2
    assert extract(first, "--out", tmp_path / "out", "--num-frames", 0) == 2


TSU_CLIPS = ("P03/P03T01C05/clips/clip_1.mp4", "P04/P04T02C01/clips/clip_1.mp4")
SMARTHOME_CLIP = "Makecoffee.Pourgrains_p18_r01_v13_c03.mp4"


def test_ids_keep_folders_and_dots_and_resume(video_plugin, tiny_clip_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for seed, name in enumerate((*TSU_CLIPS, SMARTHOME_CLIP)):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        write_test_video(data / name, num_frames=3, seed=seed)
    out = tmp_path / "out"
    options = ["--model", tiny_clip_dir, "--num-frames", 2, "--workers", 0]

    assert extract(data, "--out", out, *options) == 0
    assert "3 written, 0 already done, 0 failed" in capsys.readouterr().err
    store = FeatureStore(out)
    assert store.video_ids() == ["Makecoffee.Pourgrains_p18_r01_v13_c03", "P03/P03T01C05/clips/clip_1",
                                 "P04/P04T02C01/clips/clip_1"]
    assert (out / "P04" / "P04T02C01" / "clips" / "clip_1.safetensors").is_file()
    assert not store.read("P03/P03T01C05/clips/clip_1", "video").equal(store.read("P04/P04T02C01/clips/clip_1", "video"))

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*.safetensors")}
    (out / "P03" / "P03T01C05" / "clips" / "clip_1.safetensors").unlink()
    listing = data / "all.txt"  # relative paths in a list at the data root: the same ids
    listing.write_text("".join(f"{name}\n" for name in (*TSU_CLIPS, SMARTHOME_CLIP)))
    assert extract(listing, "--out", out, *options) == 0
    assert "1 written, 2 already done, 0 failed" in capsys.readouterr().err
    after = {path: path.stat().st_mtime_ns for path in out.rglob("*.safetensors")}
    assert sorted(after) == sorted(before)
    assert all(after[path] == stamp for path, stamp in before.items() if "P03" not in path.parts)

    assert extract(data / SMARTHOME_CLIP, "--out", tmp_path / "pkl", *options, "--format", "videochatgpt") == 0
    assert [p.name for p in (tmp_path / "pkl").iterdir()] == ["Makecoffee.pkl"]  # the original's naming
    assert extract(data, "--out", tmp_path / "pkl", *options, "--format", "videochatgpt") == 2
    message = capsys.readouterr().err
    assert "video id 'clip_1' (the original's .pkl naming" in message
    assert all(str(data / name) in message for name in TSU_CLIPS)


def test_path_lists_and_sharding(video_plugin, tiny_clip_dir, clip_folder, tmp_path, monkeypatch, capsys):
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{path}\n" for path in sorted(clip_folder.iterdir())) + "# a comment\n\n")
    out = tmp_path / "out"
    monkeypatch.setenv("WORLD_SIZE", "2")
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert extract(listing, "--out", out, "--model", tiny_clip_dir, "--num-frames", 4, "--workers", 0) == 0
        written.append(set(outputs(out)) - set().union(*written))
    assert written == [{"long.safetensors", "short.safetensors"}, {"medium.safetensors"}]  # sorted paths, rank::2
    assert "[rank 1/2]: 1 written" in capsys.readouterr().err


def test_videochatgpt_pkl_is_the_originals_output(video_plugin, tiny_clip_dir, videos, original_features,
                                                  tmp_path):
    out = tmp_path / "pkl"
    inputs = [videos / name for name in SHARED_DATA_VIDEOS]
    assert extract(*inputs, "--out", out, "--model", tiny_clip_dir, "--preprocess", "reference",
                   "--format", "videochatgpt", "--workers", 1) == 0
    assert sorted(p.name for p in out.iterdir()) == ["nasa_13013.pkl", "ntu_sample.pkl", "video_0.pkl"]
    for name in SHARED_DATA_VIDEOS:
        ours = read_legacy_features(out / f"{legacy_video_id(name)}.pkl")
        original = original_features[name][0]
        assert ours.dtype == np.float16 and ours.shape == original.shape == (356, 32)
        step = np.spacing(np.abs(original).astype(np.float16))  # one float16 rounding step
        assert np.all(np.abs(ours.astype(np.float32) - original.astype(np.float32)) <= step.astype(np.float32))


def _cli_env():
    env = dict(os.environ, LLAVIDAL_LOAD_PLUGINS="llavidal-video", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return env


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_anything(tiny_clip_dir, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for index in range(10):
        write_test_video(clips / f"clip{index}.mp4", num_frames=30, seed=index)
    out = tmp_path / "out"
    command = [str(BIN / "llavidal"), "extract", "video", str(clips), "--out", str(out), "--model", str(tiny_clip_dir),
               "--num-frames", "24", "--workers", "0"]
    process = subprocess.Popen(command, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(outputs(out)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = outputs(out)
    assert 2 <= len(done) < 10, "the first run should have been killed half-way"
    rerun = subprocess.run(command, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{10 - len(done)} written, {len(done)} already done, 0 failed" in rerun.stderr
    finished = outputs(out)
    assert len(finished) == 10 and all(finished[name] == stamp for name, stamp in done.items())
    FeatureStore(out).remove_stale_temp_files()


@pytest.mark.slow
def test_torchrun_two_processes_write_every_video_once(tiny_clip_dir, clip_folder, videos, tmp_path):
    clips = tmp_path / "clips"
    shutil.copytree(clip_folder, clips)
    for index in range(3):
        write_test_video(clips / f"extra{index}.mp4", num_frames=6, seed=10 + index)
    out = tmp_path / "out"
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--no-python", "llavidal", "extract", "video",
               str(clips), "--out", str(out), "--model", str(tiny_clip_dir), "--num-frames", "4", "--workers", "0",
               "--device", "cpu"]
    result = subprocess.run(command, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(outputs(out)) == sorted(f"{video_id_for(p)}.safetensors" for p in clips.iterdir())
    assert "[rank 0/2]: 3 written" in result.stderr and "[rank 1/2]: 3 written" in result.stderr

    # rank 1 fails at once (its other video is done, corrupted.mp4 fails) while rank 0 has two long videos to do:
    # rank 1 must wait for it before exiting with 3, or torchrun would stop rank 0 half-way
    late = tmp_path / "late"
    shutil.copytree(clips, late, ignore=lambda folder, names: [n for n in names if n != "short.mp4"])
    for name in ("heavy_a.mp4", "zz_heavy_b.mp4"):
        write_test_video(late / name, num_frames=1000, seed=len(name))
    # in one folder, so the sorted order (which decides the shards) does not depend on where the tests run
    shutil.copy(videos / "corrupted.mp4", late / "zzz_corrupted.mp4")
    assert [p.name for p in sorted(late.iterdir())] == ["heavy_a.mp4", "short.mp4", "zz_heavy_b.mp4",
                                                        "zzz_corrupted.mp4"]
    position = command.index(str(clips))
    command[position] = str(late)
    command[command.index("--num-frames") + 1] = "1000"
    result = subprocess.run(command, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "[rank 1/2]: 0 written, 1 already done, 1 failed" in result.stderr
    assert "[rank 0/2]: 2 written, 0 already done, 0 failed" in result.stderr
    assert {"heavy_a.safetensors", "zz_heavy_b.safetensors"} <= set(outputs(out))
    assert "zzz_corrupted.mp4" in (out / "errors.jsonl").read_text()


def errors_by_file(out):
    return {Path(e["path"]).name: e["error"] for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


def test_damaged_files_get_one_outcome_whatever_the_performance_flags(video_plugin, tiny_clip_dir, cut_clips,
                                                                     corrupted_video, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("cut_inside_a_packet", "cut_after_30_packets", "cut_after_110_packets"):
        shutil.copy(cut_clips[name], inputs / f"{name}.mp4")
    shutil.copy(corrupted_video, inputs / "corrupted.mp4")
    runs = {flags: tmp_path / f"out-{'-'.join(flags)}" for flags in
            (("--workers", "0"), ("--workers", "2"), ("--workers", "2", "--batch-size", "1"),
             ("--workers", "0", "--decoder", "pyav"))}
    for flags, out in runs.items():
        assert extract(inputs, "--out", out, "--model", tiny_clip_dir, "--num-frames", 8, *flags) == 3
        assert "1 written, 0 already done, 3 failed" in capsys.readouterr().err
    outcomes = [errors_by_file(out) for out in runs.values()]
    assert outcomes[0] == outcomes[1] == outcomes[2]  # --decoder pyav has one reason fewer (decord's)
    assert set(outcomes[0]) == set(outcomes[3]) == {"cut_inside_a_packet.mp4", "cut_after_30_packets.mp4",
                                                    "corrupted.mp4"}
    for errors in (outcomes[0], outcomes[3]):
        assert "rejected its data after 109 of the 146 frames" in errors["cut_inside_a_packet.mp4"]
        assert "only 30 of the 146 frames its header claims" in errors["cut_after_30_packets.mp4"]
        assert "rejected its data after 28 of the 50 frames" in errors["corrupted.mp4"]

    stores = [FeatureStore(out) for out in runs.values()]
    features = [store.read("cut_after_110_packets", "video") for store in stores]
    assert all(torch.equal(features[0], other) for other in features[1:2])  # --workers 0 and 2: identical
    assert all(torch.allclose(features[0], other, atol=1e-5) for other in features[2:])
    metadata = stores[1].metadata("cut_after_110_packets", "video")
    assert (metadata["total_frames"], metadata["claimed_frames"]) == ("110", "146")
    assert json.loads(metadata["frame_indices"]) == segment_midpoint_indices(110, 8)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_fps_sampling_of_a_variable_frame_rate_file(video_plugin, tiny_clip_dir, variable_rate_clip, tmp_path,
                                                    decoder):
    out = tmp_path / "out"
    assert extract(variable_rate_clip, "--out", out, "--model", tiny_clip_dir, "--sampling", "fps", "--fps", 1,
                   "--decoder", decoder, "--workers", 0) == 0
    metadata = FeatureStore(out).metadata("variable_rate", "video")
    assert json.loads(metadata["frame_indices"]) == [0, 30, *range(60, 120, 3)]
    assert json.loads(metadata["frame_times"]) == pytest.approx([float(second) for second in range(22)], abs=1e-6)
    assert metadata["sampling_fps"] == "1.0" and metadata["frames"] == "22"
