"""Helpers for the caption / describe / qa tests: tiny clips, a scripted chat LM and a garbage chat LM.

The LMs come from the core's testing kit (`llavidal_core.testing.scripted_lm`): a real transformers Llama whose
greedy reply to any chat prompt is a fixed text, so the local-LLM path (chat template, generate, decode) runs
for real with a reply known in advance.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from llavidal_core.testing.scripted_lm import save_garbage_lm, save_scripted_lm  # noqa: F401 - the tests' LLMs


def write_clip(path: Path, frames: int = 8, fps: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A small H.264 mp4 of random frames (``frames`` at ``fps``), written with PyAV."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


DESCRIPTION_REPLY = '{"Q": "Describe the video in detail.", "A": "Someone drinks water then sits down."}'
QA_REPLY = '[{"Q": "What happens?", "A": "Someone drinks water."}]'


class TextCommandsPlugin:
    """A plugin registering only ``llavidal curate caption|describe|qa`` (independent of the video commands)."""

    from llavidal_core import hookimpl as _hookimpl

    @_hookimpl
    def llavidal_register_commands(self, register):
        from llavidal_curate.text_commands import register_text_commands

        register_text_commands(register)


def register_text_plugin(manager) -> None:
    manager.register(TextCommandsPlugin(), name="curate-text", distribution="llavidal-curate", version="0.1.0")
