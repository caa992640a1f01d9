"""Test media and models for video cues: synthetic clips written with PyAV, and a tiny random CLIP vision tower.

`write_test_video` encodes moving colour bars with any codec of PyAV's bundled FFmpeg (``libx264``,
``mpeg4``, ``libsvtav1`` for AV1, ...), so tests need no media files. `save_tiny_clip_vision` writes a
random ``CLIPVisionModel`` of transformers' test width (hidden 32, 4 heads) that still takes the original
224×224 input (patch 14 → 256 patches), loadable with ``from_pretrained`` as a Hub checkpoint would be.
"""

from __future__ import annotations

from pathlib import Path

# the real clips of the project's shared test data (../shared/data/videos), which parity tests and the
# extraction benchmark use where that folder exists
SHARED_DATA_VIDEOS = ("ntu_sample.avi", "nasa_13013.mp4", "video_0.mov")


def synthetic_video_frames(num_frames: int, height: int, width: int, seed: int = 0):
    """uint8 ``(T, H, W, 3)`` frames: a bright bar moving right over a colour that changes every frame."""
    import numpy as np

    generator = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    base = generator.integers(0, 256, size=3)
    for t in range(num_frames):
        frames[t] = (base + 17 * t) % 256
        left = (t * max(1, width // num_frames)) % width
        frames[t, :, left:left + max(2, width // 8)] = (255, 255 - (t % 256), 0)
        frames[t, t % height, :] = 0
    return frames


def write_test_video(path: str | Path, num_frames: int = 24, height: int = 48, width: int = 64, *,
                     codec: str = "libx264", fps: int = 10, seed: int = 0) -> Path:
    """Encode `synthetic_video_frames` to ``path`` (container from the extension); returns ``path``."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libsvtav1":
            stream.options = {"preset": "12"}
        for frame in synthetic_video_frames(num_frames, height, width, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def tiny_clip_vision_config(image_size: int = 224, patch_size: int = 14, num_hidden_layers: int = 3, **overrides):
    """A `CLIPVisionConfig` of test width (hidden 32, 4 heads, MLP 37) at the given input size."""
    from transformers import CLIPVisionConfig

    values = dict(image_size=image_size, patch_size=patch_size, hidden_size=32, intermediate_size=37,
                  num_hidden_layers=num_hidden_layers, num_attention_heads=4, projection_dim=32)
    values.update(overrides)
    return CLIPVisionConfig(**values)


def save_tiny_clip_vision(directory: str | Path, seed: int = 0, **config) -> Path:
    """Save a random tiny `CLIPVisionModel` to ``directory`` (loadable with ``from_pretrained``)."""
    import torch
    from transformers import CLIPVisionModel

    directory = Path(directory)
    torch.manual_seed(seed)
    CLIPVisionModel(tiny_clip_vision_config(**config)).eval().save_pretrained(directory)
    return directory
