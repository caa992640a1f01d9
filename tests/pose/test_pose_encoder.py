"""The backbone and `PoseCueEncoder`: shapes, token layout, configs, save/load, bf16, registration."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import llavidal_pose.plugin
from llavidal_core.seed_cues import POSE
from llavidal_pose.encoder import PoseCueEncoder
from llavidal_pose.joints import BODY_PARTS, JOINT, part_of_joint
from llavidal_pose.skeleton import write_skeleton_file
from llavidal_pose.synthetic import synthesize_action
from llavidal_pose.zero_shot import load_pose_encoder

@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """One intra-op thread (see the ``one_torch_thread`` fixture)."""


SMALL = dict(width=24, num_heads=2, depth=2, downsample_layers=[1, 2], num_frames=16, num_tokens=64, embed_dim=32)


@pytest.fixture(scope="module")
def default_encoder():
    torch.manual_seed(0)
    return PoseCueEncoder().eval()


@pytest.fixture(scope="module")
def recordings():
    rng = np.random.default_rng(0)
    return [synthesize_action(action, rng) for action in ("waving", "walking")]


def test_default_encoder_gives_llavidal_shapes(default_encoder, recordings, tmp_path):
    path = write_skeleton_file(tmp_path / "S001C001P001R001A023.skeleton", recordings[0])
    features = default_encoder.encode([path, recordings[1], recordings[1].joints])
    assert [tuple(f.shape) for f in features] == [(256, 216)] * 3
    assert torch.equal(features[1], features[2]) and torch.isfinite(features[0]).all()
    spec = default_encoder.spec
    assert (spec.name, spec.feature_dim, spec.num_tokens, spec.placeholder) == ("pose", 216, 256, "<human_pose>")
    assert spec.special_tokens() == POSE.special_tokens()
    x = default_encoder.batch(recordings)
    assert x.shape == (2, 3, 64, 25, 2)
    with torch.no_grad():
        assert default_encoder.embed(x).shape == (2, 512)


def test_tokens_are_body_part_means_per_body_and_time_step():
    torch.manual_seed(0)
    encoder = PoseCueEncoder(**SMALL).eval()
    captured = {}
    encoder.backbone.register_forward_hook(lambda module, args, output: captured.update(map=output))
    x = torch.randn(2, 3, 16, 25, 2)
    with torch.no_grad():
        tokens, pooled = encoder.forward_features(x)
    feature_map = captured["map"].reshape(2, 2, 24, 4, 25)  # N, M, C, T'=16/4, V
    assert tokens.shape == (2, 64, 24)  # 4 time steps x 2 bodies x 8 parts
    parts = torch.tensor(part_of_joint())
    for t, m, p in [(0, 0, 0), (1, 1, 3), (3, 0, 7), (2, 1, 5)]:
        expected = feature_map[:, m, :, t][..., parts == p].mean(-1)
        torch.testing.assert_close(tokens[:, t * 16 + m * 8 + p], expected)
    torch.testing.assert_close(pooled, feature_map.mean(dim=(1, 3, 4)))
    assert [name for name, _ in BODY_PARTS][5] == "right_hand" and part_of_joint()[JOINT["right_thumb"]] == 5


def test_other_configurations_are_honoured(recordings):
    encoder = PoseCueEncoder(**{**SMALL, "num_tokens": 32, "num_person": 1}).eval()
    features = encoder.encode(recordings)
    assert [tuple(f.shape) for f in features] == [(32, 24)] * 2
    assert encoder.spec.feature_dim == 24 and encoder.spec.num_tokens == 32
    with pytest.raises(ValueError, match="num_tokens 100 must be a multiple of num_person x body parts = 2 x 8"):
        PoseCueEncoder(**{**SMALL, "num_tokens": 100})
    with pytest.raises(ValueError, match="multiple of the number of heads"):
        PoseCueEncoder(**{**SMALL, "num_heads": 5})
    with pytest.raises(ValueError, match="downsample_layers"):
        PoseCueEncoder(**{**SMALL, "downsample_layers": [3]})


def test_save_pretrained_round_trip(tmp_path, recordings):
    torch.manual_seed(1)
    encoder = PoseCueEncoder(**SMALL).eval()
    encoder.save_pretrained(tmp_path / "pose")
    config = json.loads((tmp_path / "pose" / "config.json").read_text())
    assert config["width"] == 24 and config["num_tokens"] == 64 and config["downsample_layers"] == [1, 2]
    loaded = load_pose_encoder(tmp_path / "pose")
    assert not loaded.training and loaded.spec == encoder.spec
    for before, after in zip(encoder.encode(recordings), loaded.encode(recordings)):
        torch.testing.assert_close(before, after)
    weights = load_file(tmp_path / "pose" / "model.safetensors")
    weights.pop("projection.bias")
    save_file(weights, tmp_path / "pose" / "model.safetensors")
    with pytest.raises(RuntimeError, match="projection.bias"):
        PoseCueEncoder.from_pretrained(tmp_path / "pose")


def test_bfloat16_on_cpu(default_encoder, recordings):
    reference = default_encoder.encode(recordings)
    half = PoseCueEncoder().eval()
    half.load_state_dict(default_encoder.state_dict())
    half.to(torch.bfloat16)
    features = half.encode(recordings)
    assert all(f.dtype == torch.bfloat16 and f.shape == (256, 216) and torch.isfinite(f).all() for f in features)
    for exact, approx in zip(reference, features):
        assert torch.nn.functional.cosine_similarity(exact.flatten(), approx.float().flatten(), dim=0) > 0.99


def test_registered_through_the_plugin_hooks(llavidal_plugins):
    llavidal_plugins.register(llavidal_pose.plugin, name="pose", distribution="llavidal-pose", version="0.1.0")
    registration = llavidal_plugins.cue("pose")
    assert registration.spec.name == "pose" and registration.spec.num_tokens == 256
    assert registration.spec.distribution == "llavidal-pose" and registration.spec.version
    assert registration.encoder_factory() is PoseCueEncoder
    commands = llavidal_plugins.commands()
    assert {("extract", "pose"), ("pose", "train"), ("pose", "classify")} <= set(commands)


def test_the_entry_point_module_imports_no_torch():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAVIDAL_")}
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import llavidal_pose.plugin"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "llavidal_pose.plugin" in modules
    assert not {m for m in modules if m.split(".")[0] in {"torch", "numpy", "transformers", "safetensors"}}
