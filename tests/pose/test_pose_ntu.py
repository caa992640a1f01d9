"""NTU RGB+D names and splits, and ``llavidal pose manifest``."""

import json

import pytest

import llavidal_pose.plugin
from llavidal_core.cli import main
from llavidal_core.errors import LlavidalError
from llavidal_pose.ntu import NTUName, TRAINING_PERFORMERS


def test_names_and_splits():
    name = NTUName.parse("data/S018C002P045R001A120.skeleton.npy")
    assert (name.setup, name.camera, name.performer, name.replication, name.action) == (18, 2, 45, 1, 120)
    assert name.sample == "S018C002P045R001A120"
    assert name.in_training_set("xsub") and name.in_training_set("xset") and name.in_training_set("xview")
    other = NTUName.parse("S017C001P003R002A060.skeleton")
    assert not other.in_training_set("xsub") and not other.in_training_set("xset")
    assert not other.in_training_set("xview")
    assert len(TRAINING_PERFORMERS) == 53 and len([p for p in TRAINING_PERFORMERS if p <= 40]) == 20
    with pytest.raises(LlavidalError, match="not an NTU RGB\\+D recording name"):
        NTUName.parse("clip.skeleton")


def test_manifest_command(llavidal_plugins, tmp_path, capsys):
    llavidal_plugins.register(llavidal_pose.plugin, name="pose", distribution="llavidal-pose", version="0.1.0")
    data = tmp_path / "skeletons"
    data.mkdir()
    for name in ("S001C001P001R001A001", "S001C002P003R001A002", "S002C003P008R002A001", "S003C001P010R001A002"):
        (data / f"{name}.skeleton").write_text("0\n")
    (tmp_path / "actions.txt").write_text("# NTU action names\ndrink water\neat meal\n")
    (tmp_path / "missing.txt").write_text("S003C001P010R001A002\n")
    argv = ["pose", "manifest", str(data), "--actions", str(tmp_path / "actions.txt"), "--out", str(tmp_path / "m")]
    assert main([*argv, "--split", "xsub", "--skip", str(tmp_path / "missing.txt")]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 1
    train = [json.loads(line) for line in (tmp_path / "m" / "train.jsonl").read_text().splitlines()]
    held_out = [json.loads(line) for line in (tmp_path / "m" / "eval.jsonl").read_text().splitlines()]
    assert [(r["path"].rsplit("/", 1)[-1], r["action"]) for r in train] == [
        ("S001C001P001R001A001.skeleton", "drink water"), ("S002C003P008R002A001.skeleton", "drink water")]
    assert [r["action"] for r in held_out] == ["eat meal"]
    assert main([*argv, "--split", "xview"]) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(tmp_path / "m"), "train": 2, "eval": 2, "skipped": 0}
    (tmp_path / "actions.txt").write_text("drink water\n")
    assert main([*argv, "--split", "xset"]) == 2
    assert "action 2 has no name (1 names given)" in capsys.readouterr().err
