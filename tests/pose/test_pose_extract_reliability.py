"""``llavidal extract pose`` into a folder that already holds a corrupt feature file and a killed run's temp file."""

import os
import time

import numpy as np
import pytest

import llavidal_pose.plugin
from llavidal_core.cli import main
from llavidal_core.features import FeatureStore
from llavidal_pose.synthetic import synthesize_action


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """One intra-op thread (see the ``one_torch_thread`` fixture)."""


def test_a_corrupt_file_is_rewritten_and_the_videos_after_it_written(llavidal_plugins, tmp_path, capsys, caplog):
    llavidal_plugins.register(llavidal_pose.plugin, name="pose", distribution="llavidal-pose", version="0.1.0")
    rng = np.random.default_rng(0)
    inputs = tmp_path / "skeletons"
    inputs.mkdir()
    for name, action in (("a", "waving"), ("b", "walking"), ("c", "clapping")):
        np.save(inputs / f"{name}.npy", synthesize_action(action, rng).joints)
    out = tmp_path / "features"
    store = FeatureStore(out)
    store.path_for("a").write_bytes(b"\x00" * 40)  # the first video's file: corrupt
    left_over = out / ".b.safetensors.4242.0badf00d.tmp"
    left_over.write_bytes(b"half")
    os.utime(left_over, (time.time() - 60, time.time() - 60))

    assert main(["extract", "pose", str(inputs), "--out", str(out), "--model", "random", "--device", "cpu"]) == 0

    assert "3 written, 0 already done, 0 failed" in capsys.readouterr().err
    assert store.video_ids() == ["a", "b", "c"] and store.read("a", "pose").shape == (256, 216)
    assert f"{store.path_for('a')}: not a readable safetensors file" in caplog.text
    assert not left_over.exists()
