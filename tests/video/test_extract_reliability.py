"""``llavidal extract video`` on messy output folders: features that come out NaN, a corrupt file already in
``--out``, temp files of a killed run, and reruns that fail the same way."""

import json
import os
import time

import torch

import llavidal_video.plugin
from llavidal_core.cli import main
from llavidal_core.features import FeatureStore


def extract(*args):
    return main(["extract", "video", *map(str, args)])


def save_nan_clip(tiny_clip_dir, directory):
    """The tiny CLIP with one NaN in its patch embedding: every feature it computes is NaN."""
    from transformers import CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(tiny_clip_dir)
    patch_embedding = next(p for name, p in model.named_parameters() if name.endswith("patch_embedding.weight"))
    with torch.no_grad():
        patch_embedding[0, 0, 0, 0] = float("nan")
    model.save_pretrained(directory)
    return directory


def test_nan_features_are_per_video_failures_recorded_once(llavidal_plugins, tiny_clip_dir, clip_folder, tmp_path,
                                                          capsys):
    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version="0.1.0")
    nan_clip = save_nan_clip(tiny_clip_dir, tmp_path / "nan-clip")
    out = tmp_path / "features"
    args = [clip_folder, "--out", out, "--model", nan_clip, "--num-frames", 4]

    assert extract(*args) == 3
    assert "0 written, 0 already done, 3 failed" in capsys.readouterr().err
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["video_id"] for e in errors) == ["long", "medium", "short"]
    assert all("[video]" in e["error"] and "values are not finite (NaN or inf)" in e["error"] for e in errors)
    assert FeatureStore(out).video_ids() == []

    assert extract(*args) == 3  # retried, failing the same way: nothing new in the log
    assert "0 written, 0 already done, 3 failed" in capsys.readouterr().err
    assert [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()] == errors


def test_a_corrupt_file_in_out_is_rewritten_and_a_killed_run_s_temp_file_removed(
        llavidal_plugins, tiny_clip_dir, clip_folder, tmp_path, capsys):
    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version="0.1.0")
    out = tmp_path / "features"
    store = FeatureStore(out)
    store.path_for("long").write_bytes(b"the first kilobyte of a copy that was cut short")  # sorts first
    left_over = out / ".medium.safetensors.4242.0badf00d.tmp"
    left_over.write_bytes(b"half")
    os.utime(left_over, (time.time() - 60, time.time() - 60))

    assert extract(clip_folder, "--out", out, "--model", tiny_clip_dir, "--num-frames", 4) == 0
    captured = capsys.readouterr()
    assert "3 written, 0 already done, 0 failed" in captured.err
    assert store.video_ids() == ["long", "medium", "short"]
    assert store.read("long", "video").shape == (4 + 256, 32)
    assert not left_over.exists() and not (out / "errors.jsonl").exists()
