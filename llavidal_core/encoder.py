"""`CueEncoder`: the base class of every cue's encoder (raw input → feature rows).

An encoder is an ``nn.Module`` with Hub I/O (`huggingface_hub.PyTorchModelHubMixin`: ``save_pretrained``,
``from_pretrained``, ``push_to_hub``; the ``__init__`` arguments become ``config.json``). A subclass
says which `CueSpec` its output satisfies and implements `encode_one`, or `encode` when it can batch.

An encoder also says how to build it again (`CueEncoder.encoder_record`, an
`llavidal_core.encoder_records.EncoderRecord`) and writes that record with every feature it computes
(`CueEncoder.feature_metadata`), so a model trained on those features can rebuild the same encoder at inference.
"""

from __future__ import annotations

import contextlib
import io
from abc import abstractmethod
from typing import Any, Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from llavidal_core.cues import CueSpec
from llavidal_core.encoder_records import RECORD_KEY, EncoderRecord


class CueEncoder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="llavidal",
    tags=["llavidal", "llavidal-cue-encoder"],
    repo_url="https://github.com/llavidal/llavidal",
):
    """Turns raw inputs of one cue (a video path, a skeleton file, frames) into ``(rows, feature_dim)`` tensors.

    ``reads_video_files``: whether a raw input is a video file path (the ``video`` and ``object`` cues), so
    that a pipeline given a video feeds it to this cue too; a skeleton file, for example, is not.
    """

    reads_video_files: bool = False
    pretrained_name: str | None = None  # what `from_pretrained` loaded this encoder from, if it did

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """``PyTorchModelHubMixin.from_pretrained``, remembering the folder or Hub id for `encoder_record`."""
        encoder = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        encoder.pretrained_name = str(pretrained_model_name_or_path)
        return encoder

    @classmethod
    def _from_pretrained(cls, **kwargs):
        # a checkpoint missing weights must not load as silently random ones (the mixin's default is lax)
        kwargs["strict"] = True
        # huggingface_hub prints "Loading weights from local directory" on stdout, which belongs to answers
        with contextlib.redirect_stdout(io.StringIO()):
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

    def encoder_record(self) -> EncoderRecord | None:
        """How to build this encoder again (`EncoderRecord`), or None when it cannot be (random weights made
        here, a module handed over by hand). The default: the folder or Hub id it was loaded from, in its
        current dtype. Encoders built from other models with options override this."""
        if self.pretrained_name is None:
            return None
        return EncoderRecord(pretrained=self.pretrained_name, dtype=str(self.dtype).removeprefix("torch."))

    def feature_metadata(self) -> dict[str, str]:
        """String metadata stored with each feature this encoder computes: its spec and its record (JSON)."""
        metadata = {"spec": self.spec.to_json()}
        record = self.encoder_record()
        if record is not None:  # a folder named relative to this process's directory is found from any other
            metadata[RECORD_KEY] = record.with_local_folders_absolute().to_json()
        return metadata

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        first = next(self.parameters(), None)
        return first.dtype if first is not None else torch.get_default_dtype()
