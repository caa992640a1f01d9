"""`FakeCueEncoder`: the torch half of the fake cue (see `llavidal_core.testing.fake_cue`)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from llavidal_core.encoder import CueEncoder
from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC, seed_for


class FakeCueEncoder(CueEncoder):
    def __init__(self, feature_dim: int = FAKE_CUE_SPEC.feature_dim, num_tokens: int = FAKE_CUE_SPEC.num_tokens):
        super().__init__()
        self._spec = dataclasses.replace(FAKE_CUE_SPEC, feature_dim=feature_dim, num_tokens=num_tokens)
        self.mix = nn.Linear(feature_dim, feature_dim)

    @property
    def spec(self):
        return self._spec

    @torch.no_grad()
    def encode_one(self, raw) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed_for(raw))
        noise = torch.randn(self._spec.num_tokens, self._spec.feature_dim, generator=generator)
        return self.mix(noise.to(self.device, self.dtype))
