"""Fixtures for the video plugin's tests: a tiny random CLIP, synthetic clips and the real shared videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from llavidal_core.testing.original_video_pipeline import load_original_models, original_extraction
from llavidal_core.testing.tiny_video import SHARED_DATA_VIDEOS, save_tiny_clip_vision, write_test_video


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A random 3-block CLIPVisionModel, hidden 32, taking 224×224 input in 14-pixel patches (256 patches)."""
    return save_tiny_clip_vision(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def videos(shared_data) -> Path:
    return shared_data / "videos"


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    """Three small H.264 / MPEG-4 clips of different lengths (5, 24 and 130 frames)."""
    folder = tmp_path_factory.mktemp("clips")
    write_test_video(folder / "short.mp4", num_frames=5, seed=1)
    write_test_video(folder / "medium.mp4", num_frames=24, seed=2)
    write_test_video(folder / "long.avi", num_frames=130, codec="mpeg4", seed=3)
    return folder


@pytest.fixture(scope="session")
def av1_clip(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("av1") / "av1_clip.mp4", num_frames=12, codec="libsvtav1")


@pytest.fixture(scope="session")
def original_features(tiny_clip_dir, videos):
    """The original pipeline's (float16 output, float32 layer features) for each real video."""
    processor, tower = load_original_models(tiny_clip_dir)
    return {name: original_extraction(videos / name, processor, tower) for name in SHARED_DATA_VIDEOS}
