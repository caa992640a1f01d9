"""The example cue plugin of the README: installed with pip it appears in ``llavidal plugins`` and works."""

import json
import os
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN = REPO_ROOT / "tests" / "example_plugin"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE_PLUGIN)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return target


@pytest.mark.slow
def test_installing_the_example_makes_it_appear_in_plugins(installed_example, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAVIDAL_")}
    env["PYTHONPATH"] = str(installed_example)
    result = subprocess.run([sys.executable, "-m", "llavidal_core", "plugins"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    example = next(r for r in json.loads(result.stdout) if r["name"] == "imu")
    assert example["distribution"] == "llavidal-imu-stats" and example["cues"] == ["imu"]
    assert example["version"] == "0.1.0" and not example["builtin"]
    assert "extract imu" in example["commands"]

    recording = tmp_path / "wrist.csv"  # the installed plugin's cue is extracted by the core's engine
    np.savetxt(recording, np.column_stack([np.arange(32) / 50.0, np.ones((32, 3))]), delimiter=",")
    result = subprocess.run([sys.executable, "-m", "llavidal_core", "extract", "imu", str(recording),
                             "--out", str(tmp_path / "features")], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 written, 0 already done, 0 failed" in result.stderr
    assert (tmp_path / "features" / "wrist.safetensors").is_file()


def test_example_encoder_turns_a_csv_into_window_statistics(llavidal_plugins, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    import llavidal_imu_stats

    llavidal_plugins.register(llavidal_imu_stats, name="imu", distribution="llavidal-imu-stats", version="0.1.0")
    samples = np.column_stack([np.arange(64) / 50.0, np.sin(np.arange(64)), np.ones(64), np.arange(64) % 4])
    csv = tmp_path / "wrist.csv"
    np.savetxt(csv, samples, delimiter=",")
    encoder = llavidal_plugins.cue("imu").encoder_factory()()
    features = encoder.encode([csv])[0]
    assert features.shape == (16, 6)
    first_window = torch.from_numpy(samples[:4, 1:4]).float()
    assert torch.allclose(features[0, :3], first_window.mean(0))
    assert torch.allclose(features[0, 3:], first_window.std(0, correction=0))
    short = tmp_path / "short.csv"
    np.savetxt(short, samples[:5], delimiter=",")
    with pytest.raises(ValueError, match="short.csv: 5 samples"):
        encoder.encode([short])


def test_readme_shows_the_example_plugin_verbatim():
    readme = (REPO_ROOT / "README.md").read_text()
    for path in ("pyproject.toml", "llavidal_imu_stats/__init__.py", "llavidal_imu_stats/encoder.py"):
        assert (EXAMPLE_PLUGIN / path).read_text().strip() in readme, f"README is out of date with {path}"
