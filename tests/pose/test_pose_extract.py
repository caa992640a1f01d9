"""``llavidal extract pose``: outputs, errors.jsonl, exit codes, resume, sharding, list files, duplicate ids."""

import json

import numpy as np
import pytest
import torch

import llavidal_pose.plugin
from llavidal_core.cli import main
from llavidal_core.features import FeatureStore
from llavidal_pose.skeleton import write_skeleton_file
from llavidal_pose.synthetic import synthesize_action


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """One intra-op thread (see the ``one_torch_thread`` fixture)."""


@pytest.fixture
def pose_cli(llavidal_plugins):
    llavidal_plugins.register(llavidal_pose.plugin, name="pose", distribution="llavidal-pose", version="0.1.0")

    def run(*argv):
        return main(["extract", "pose", *map(str, argv), "--device", "cpu"])

    return run


@pytest.fixture
def inputs(tmp_path):
    """A folder with a .skeleton, a nested .npy, a .npz, a malformed .skeleton and an unrelated file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "skeletons"
    (folder / "nested").mkdir(parents=True)
    write_skeleton_file(folder / "S001C001P001R001A001.skeleton", synthesize_action("waving", rng))
    np.save(folder / "nested" / "S001C001P002R001A002.skeleton.npy", synthesize_action("walking", rng).joints)
    np.savez(folder / "S001C001P003R001A003.npz", joints=synthesize_action("clapping", rng).joints)
    good = (folder / "S001C001P001R001A001.skeleton").read_text().splitlines()
    good[10] = good[10].rsplit(" ", 1)[0]  # a joint line with 11 fields
    (folder / "S001C001P004R001A004.skeleton").write_text("\n".join(good) + "\n")
    (folder / "notes.txt").write_text("not a skeleton\n")
    return folder


def test_a_folder_with_one_malformed_file(pose_cli, inputs, tmp_path, capsys):
    out = tmp_path / "features"
    assert pose_cli(inputs, "--out", out, "--model", "random", "--batch-size", "2", "--workers", "1") == 3
    store = FeatureStore(out)
    # ids are paths under the folder without the last suffix: the nested .skeleton.npy keeps its folder and name
    assert store.video_ids() == ["S001C001P001R001A001", "S001C001P003R001A003", "nested/S001C001P002R001A002.skeleton"]
    assert (out / "nested" / "S001C001P002R001A002.skeleton.safetensors").is_file()
    features = store.read("nested/S001C001P002R001A002.skeleton", "pose")
    assert features.shape == (256, 216) and features.dtype == torch.float32
    metadata = store.metadata("S001C001P001R001A001", "pose")
    assert metadata["encoder"] == "random" and metadata["random_weights"] == "true" and "random weights" in metadata["note"]
    assert metadata["source"].endswith("S001C001P001R001A001.skeleton")
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == [str(inputs / "S001C001P004R001A004.skeleton")]
    assert ":11: the line of joint 7 of body 1 of frame 1 should have 12 fields, found 11" in errors[0]["error"]
    stderr = capsys.readouterr().err
    assert "warning: random weights" in stderr and "3 written, 0 already done, 1 failed" in stderr

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    assert len(before) == 3
    assert pose_cli(inputs, "--out", out, "--model", "random") == 3
    assert "0 written, 3 already done, 1 failed" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == before
    (inputs / "S001C001P004R001A004.skeleton").unlink()
    assert pose_cli(inputs, "--out", out, "--model", "random") == 0
    (out / "S001C001P003R001A003.safetensors").write_bytes(b"not safetensors")
    (out / "errors.jsonl").unlink()
    assert pose_cli(inputs, "--out", out, "--model", "random") == 0  # a corrupt output is rewritten, not fatal
    assert not (out / "errors.jsonl").exists()
    assert FeatureStore(out).read("S001C001P003R001A003", "pose").shape == (256, 216)


def test_list_files_and_sharding(pose_cli, inputs, tmp_path, monkeypatch):
    (inputs / "S001C001P004R001A004.skeleton").unlink()
    listing = tmp_path / "all.txt"
    listing.write_text("# the three recordings\nskeletons/S001C001P001R001A001.skeleton\n\n"
                       f"{inputs / 'nested' / 'S001C001P002R001A002.skeleton.npy'}\nskeletons/S001C001P003R001A003.npz\n")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert pose_cli(listing, "--out", tmp_path / "rank1", "--model", "random", "--dtype", "bfloat16") == 0
    store = FeatureStore(tmp_path / "rank1")
    # sorted paths, rank 1 of 2; a relative path in a list keeps its folders (the list's folder is the root)
    assert store.video_ids() == ["skeletons/S001C001P003R001A003"]
    assert store.read("skeletons/S001C001P003R001A003", "pose").dtype == torch.bfloat16
    monkeypatch.setenv("RANK", "0")
    assert pose_cli(listing, "--out", tmp_path / "rank1", "--model", "random") == 0
    assert store.video_ids() == ["S001C001P002R001A002.skeleton", "skeletons/S001C001P001R001A001",
                                 "skeletons/S001C001P003R001A003"]  # an absolute path in a list: its name
    monkeypatch.setenv("RANK", "2")
    assert pose_cli(listing, "--out", tmp_path / "bad", "--model", "random") == 2


def test_usage_errors_exit_2(pose_cli, inputs, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    np.save(other / "S001C001P001R001A001.npy", np.zeros((4, 25, 3)))
    assert pose_cli(inputs, other, "--out", tmp_path / "o", "--model", "random") == 2
    err = capsys.readouterr().err
    assert "two inputs have the video id 'S001C001P001R001A001'" in err
    assert str(other / "S001C001P001R001A001.npy") in err and str(inputs / "S001C001P001R001A001.skeleton") in err
    assert pose_cli(tmp_path / "missing", "--out", tmp_path / "o", "--model", "random") == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert pose_cli(inputs, "--out", tmp_path / "o", "--model", tmp_path / "no-model") == 2
    assert "cannot load a pose encoder" in capsys.readouterr().err
    for option, value in (("--batch-size", "0"), ("--workers", "-1")):
        assert pose_cli(inputs, "--out", tmp_path / "o", "--model", "random", option, value) == 2
        assert f"{option} must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
