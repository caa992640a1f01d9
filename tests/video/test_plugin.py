"""The plugin module: registers the video cue and its command, and stays light (no torch at import)."""

import dataclasses
import json
import os
import subprocess
import sys

import llavidal_video.plugin
from llavidal_core.seed_cues import VIDEO


def test_registers_the_video_cue_and_the_extract_command(llavidal_plugins):
    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version="0.1.0")
    registration = llavidal_plugins.cue("video")
    spec = registration.spec
    assert (spec.placeholder, spec.patch_token, spec.start_token, spec.end_token) == (
        "<video>", "<vid_patch>", "<vid_start>", "<vid_end>")
    assert (spec.feature_dim, spec.num_tokens, spec.distribution) == (1024, 356, "llavidal-video")
    assert dataclasses.replace(spec, version=None) == VIDEO and spec.version
    assert registration.encoder_factory().__name__ == "VideoCueEncoder"
    assert ("extract", "video") in llavidal_plugins.commands()


def test_the_entry_point_module_imports_no_torch_numpy_or_decoder():
    code = ("import sys, json, llavidal_video.plugin; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'numpy', 'transformers', 'decord', 'av', 'safetensors'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_installed_plugin_is_listed_by_llavidal_plugins():
    env = dict(os.environ, LLAVIDAL_LOAD_PLUGINS="llavidal-video")
    result = subprocess.run([sys.executable, "-m", "llavidal_core", "plugins"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    video = next(record for record in json.loads(result.stdout) if record["name"] == "video")
    assert video["distribution"] == "llavidal-video" and video["cues"] == ["video"]
    assert video["commands"] == ["extract video"]
