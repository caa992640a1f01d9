"""Fixtures of the curation video-step tests: hand-made NTU skeletons and small generated clips."""

from pathlib import Path

import numpy as np
import pytest

from ntu_bodies import make_body  # noqa: F401 - the fixtures' tests import it from there


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """Tiny models gain nothing from threads, and the CPU is shared."""


@pytest.fixture
def ntu_layout(tmp_path):
    """``(videos, skeletons, write)``: ``write(name, bodies, num_frames)`` writes a 160x120 clip and its skeleton."""
    from llavidal_pose.skeleton import SkeletonSequence, write_skeleton_file
    from llavidal_video.testing.videos import write_test_video

    videos, skeletons = tmp_path / "nturgb+d_rgb", tmp_path / "skeletons"
    videos.mkdir()
    skeletons.mkdir()

    def write(name, bodies, num_frames=3, video_frames=None):
        write_test_video(videos / f"{name}_rgb.avi", num_frames=video_frames or num_frames, height=120, width=160,
                         codec="mpeg4")
        write_skeleton_file(skeletons / f"{name}.skeleton", SkeletonSequence(num_frames, tuple(bodies)))
        return videos / f"{name}_rgb.avi"

    return videos, skeletons, write
