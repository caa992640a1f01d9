"""A fake cue for tests: a spec, a deterministic encoder and a plugin that registers them.

`FakeCueEncoder` maps any string (a path, an id) to fixed pseudo-random features seeded by the string, then
through one linear layer, so it has weights to save and load and always gives the same rows for the same
input.
"""

from __future__ import annotations

import zlib

from llavidal_core.cues import CueSpec
from llavidal_core.hookspecs import hookimpl

FAKE_CUE_SPEC = CueSpec(
    name="fake",
    placeholder="<fake>",
    patch_token="<fake_patch>",
    start_token="<fake_start>",
    end_token="<fake_end>",
    feature_dim=8,
    num_tokens=4,
    description="deterministic pseudo-random features, for tests",
)


def seed_for(raw) -> int:
    """A stable seed for any input, whatever the process (unlike ``hash``)."""
    return zlib.crc32(str(raw).encode("utf-8"))


class FakeCuePlugin:
    """Register with ``manager.register(FakeCuePlugin(), name="fake")``."""

    __name__ = "fake"

    @hookimpl
    def llavidal_register_cues(self, register):
        register(FAKE_CUE_SPEC, encoder="llavidal_core.testing.fake_cue_encoder:FakeCueEncoder")
