"""Fixtures for the video plugin's tests: a tiny random CLIP, synthetic clips and the real shared videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from llavidal_video.testing.original_pipeline import load_original_models, original_extraction
from llavidal_video.testing.videos import (SHARED_DATA_VIDEOS, save_tiny_clip_vision, synthetic_video_frames,
                                             write_test_video)


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


@pytest.fixture(scope="session")
def variable_rate_times() -> list[float]:
    """Presentation times (s) of `variable_rate_clip`: 60 frames at 30 fps, then 60 at 3 fps (22 s in all)."""
    return [index / 30 for index in range(60)] + [2 + index / 3 for index in range(60)]


@pytest.fixture(scope="session")
def variable_rate_clip(tmp_path_factory, variable_rate_times) -> Path:
    """An H.264 MP4 whose frames carry the explicit timestamps `variable_rate_times` (PyAV, 1/90000 s ticks)."""
    from fractions import Fraction

    import av

    path = tmp_path_factory.mktemp("vfr") / "variable_rate.mp4"
    tick = Fraction(1, 90000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = tick
        for pixels, seconds in zip(synthetic_video_frames(len(variable_rate_times), 48, 64, seed=4),
                                   variable_rate_times):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = round(seconds / tick), tick
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def cut_clips(tmp_path_factory) -> dict[str, Path]:
    """A 146-frame H.264 MP4 with its index at the front (as streamed downloads are), cut short three ways:
    inside a packet at 80% of its bytes (damaged data), and cleanly after 110 or after 30 of its packets."""
    import av

    folder = tmp_path_factory.mktemp("cut")
    whole = folder / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for pixels in synthetic_video_frames(146, 48, 64, seed=5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(whole)) as container:
        packet_ends = sorted(packet.pos + packet.size for packet in container.demux(container.streams.video[0])
                             if packet.size)
    data = whole.read_bytes()
    cuts = {"cut_inside_a_packet": int(len(data) * 0.8), "cut_after_110_packets": packet_ends[109],
            "cut_after_30_packets": packet_ends[29]}
    clips = {"whole": whole}
    for name, size in cuts.items():
        clips[name] = folder / f"{name}.mp4"
        clips[name].write_bytes(data[:size])
    return clips


@pytest.fixture(scope="session")
def corrupted_video(videos) -> Path:
    """The shared deliberately corrupted H.264 file (decoders fail part-way), read in place."""
    path = videos / "corrupted.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path
