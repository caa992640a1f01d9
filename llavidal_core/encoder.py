"""`CueEncoder`: the base class of every cue's encoder (raw input → feature rows).

An encoder is an ``nn.Module`` with Hub I/O (`huggingface_hub.PyTorchModelHubMixin`: ``save_pretrained``,
``from_pretrained``, ``push_to_hub``; the ``__init__`` arguments become ``config.json``). A subclass
says which `CueSpec` its output satisfies and implements `encode_one`, or `encode` when it can batch.
"""

from __future__ import annotations

import contextlib
import sys
from abc import abstractmethod
from typing import Any, Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from llavidal_core.cues import CueSpec


class CueEncoder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="llavidal",
    tags=["llavidal", "llavidal-cue-encoder"],
    repo_url="https://github.com/llavidal/llavidal",
):
    """Turns raw inputs of one cue (a video path, a skeleton file, frames) into ``(rows, feature_dim)`` tensors."""

    @classmethod
    def _from_pretrained(cls, **kwargs):
        # a checkpoint missing weights must not load as silently random ones (the mixin's default is lax)
        kwargs["strict"] = True
        # huggingface_hub prints "Loading weights from local directory" on stdout, which belongs to answers
        with contextlib.redirect_stdout(sys.stderr):
            return super()._from_pretrained(**kwargs)

    @property
    @abstractmethod
    def spec(self) -> CueSpec:
        """The spec this encoder's output satisfies (row count and feature width)."""

    def encode_one(self, raw: Any) -> torch.Tensor:
        """Encode one raw input into a ``(rows, feature_dim)`` tensor. Override this or `encode`."""
        raise NotImplementedError(f"{type(self).__name__} implements neither encode_one nor encode")

    def encode(self, raws: Sequence[Any]) -> list[torch.Tensor]:
        """Encode a batch; returns one checked ``(rows, feature_dim)`` tensor per input, in order."""
        return [self.check_features(self.encode_one(raw), source=raw) for raw in raws]

    def forward(self, raws: Sequence[Any]) -> list[torch.Tensor]:
        return self.encode(raws)

    def check_features(self, features: torch.Tensor, source: Any = None) -> torch.Tensor:
        """Raise a ValueError naming the cue and the input unless ``features`` has the spec's shape."""
        spec = self.spec
        where = f" for {source}" if source is not None else ""
        if features.ndim != 2 or features.shape[1] != spec.feature_dim:
            raise ValueError(
                f"cue {spec.name!r}: encoder {type(self).__name__} returned shape {tuple(features.shape)}{where}, "
                f"expected (rows, {spec.feature_dim})"
            )
        rows = features.shape[0]
        if spec.num_tokens is not None and rows != spec.num_tokens:
            raise ValueError(
                f"cue {spec.name!r}: encoder {type(self).__name__} returned {rows} rows{where}, expected {spec.num_tokens}"
            )
        if spec.tokens_per_item is not None and rows % spec.tokens_per_item:
            raise ValueError(
                f"cue {spec.name!r}: encoder {type(self).__name__} returned {rows} rows{where}, "
                f"not a multiple of {spec.tokens_per_item}"
            )
        return features

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        first = next(self.parameters(), None)
        return first.dtype if first is not None else torch.get_default_dtype()
