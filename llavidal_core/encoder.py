"""`CueEncoder`: the base class of every cue's encoder (raw input → feature rows), in two phases.

An encoder is an ``nn.Module`` with Hub I/O (`huggingface_hub.PyTorchModelHubMixin`: ``save_pretrained``,
``from_pretrained``, ``push_to_hub``; the ``__init__`` arguments become ``config.json``). A subclass says
which `CueSpec` its output satisfies and implements the two phases:

- `CueEncoder.prepare` ``(raw) -> sample``: the CPU work on one input (decode a video, parse a skeleton
  file, resize), with no model. It runs in DataLoader worker processes during extraction, so the sample must
  be picklable and `CueEncoder.preparer` must give a picklable callable doing it (by default the bound
  method; encoders holding large weights return a small object instead, so workers do not copy them).
- `CueEncoder.forward` ``(samples) -> [features, ...]``: the model, on the encoder's device and dtype,
  batched across the samples; one ``(rows, feature_dim)`` tensor per sample (or ``(..., feature_dim)``,
  stored as is and flattened to rows for the model), or an `EncodedFeatures` when there is per-input
  metadata worth storing (the frames sampled, the objects found).

`CueEncoder.encode` runs both (what the inference pipeline calls); ``llavidal extract CUE``
(`llavidal_core.extraction`) runs them apart, preparing the next inputs while the model encodes. A simple
encoder may implement `encode_one` alone (its ``prepare`` is then the identity).

An encoder also says how to build it again (`CueEncoder.encoder_record`, an
`llavidal_core.encoder_records.EncoderRecord`) and writes that record with every feature it computes
(`CueEncoder.feature_metadata`), so a model trained on those features can rebuild the same encoder at inference.
"""

from __future__ import annotations

import contextlib
import io
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from llavidal_core.cues import CueSpec
from llavidal_core.encoder_records import RECORD_KEY, EncoderRecord


@dataclass
class EncodedFeatures:
    """One input's features as `CueEncoder.forward` returns them with per-input metadata.

    ``features``: ``(rows, feature_dim)``, or ``(..., feature_dim)`` when the cue stores a structure (the
    object cue's ``(objects, points, D)``), flattened to rows for the model. ``metadata``: strings stored
    with this input's features (the frame indices sampled, the tags found).
    """

    features: torch.Tensor
    metadata: Mapping[str, str] = field(default_factory=dict)


def split_encoded(output: "torch.Tensor | EncodedFeatures") -> tuple[torch.Tensor, dict[str, str]]:
    """``(features, metadata)`` of one item of `CueEncoder.forward`'s list, either kind."""
    if isinstance(output, EncodedFeatures):
        return output.features, dict(output.metadata)
    if isinstance(output, torch.Tensor):
        return output, {}
    raise TypeError(f"an encoder's forward must give a tensor or EncodedFeatures per input, got {type(output).__name__}")


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
    ``input_suffixes``: the file suffixes (lower case, with the dot) ``llavidal extract`` looks for in a
    folder given as input; None takes every file in it. ``metadata_notes``: extra strings stored with every
    feature (e.g. that the weights are random), set by whoever builds the encoder.
    """

    reads_video_files: bool = False
    input_suffixes: tuple[str, ...] | None = None
    pretrained_name: str | None = None  # what `from_pretrained` loaded this encoder from, if it did
    metadata_notes: dict[str, str] | None = None

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

    # -- the two phases ----------------------------------------------------------------------------------------

    def prepare(self, raw: Any) -> Any:
        """Phase 1, CPU only: one raw input (typically a file path) → a picklable sample for `forward`.

        Raises an exception naming the input when it cannot be read (extraction records it in
        ``errors.jsonl`` and goes on). The default passes the input through (for `encode_one` encoders).
        """
        return raw

    def preparer(self, in_worker: bool = False) -> Callable[[Any], Any]:
        """A picklable callable doing `prepare`, for DataLoader worker processes (``in_worker``: it runs in one
        of several worker processes, so it should use one thread). The default is the bound method, which
        carries the whole encoder to each worker; encoders with weights return a small object instead."""
        return self.prepare

    def forward(self, samples: Sequence[Any]) -> list[torch.Tensor | EncodedFeatures]:
        """Phase 2, on the encoder's device: prepared samples → one output per sample, in order (module
        docstring). The default runs `encode_one` on each sample."""
        return [self.encode_one(sample) for sample in samples]

    def encode_one(self, raw: Any) -> torch.Tensor:
        """Encode one input into a ``(rows, feature_dim)`` tensor: the one method a simple encoder needs."""
        raise NotImplementedError(f"{type(self).__name__} implements neither forward nor encode_one")

    @torch.inference_mode()
    def encode(self, raws: Sequence[Any]) -> list[torch.Tensor]:
        """Both phases on raw inputs: one checked ``(rows, feature_dim)`` tensor per input, in order.

        Errors of `prepare` (an unreadable file) and of `check_features` (a wrong shape) propagate.
        """
        if not raws:
            return []
        samples = [self.prepare(raw) for raw in raws]
        return [self.check_features(self.as_rows(split_encoded(output)[0]), source=raw)
                for raw, output in zip(raws, self(samples))]

    def as_rows(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., feature_dim)`` → ``(rows, feature_dim)`` (a stored structure, flattened for the model)."""
        return features.reshape(-1, features.shape[-1]) if features.ndim > 2 else features

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
        metadata = {"spec": self.spec.to_json(), **(self.metadata_notes or {})}
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
