"""The training dataset: instruction samples joined with their cues' features, checked once at set-up.

Samples come from an ADL-X style file, or from a raw Video-ChatGPT ``[{video_id, q, a}]`` file converted with
the original's rule on reading (`read_training_samples`).

Each cue's features come from a `FeatureStore` (keyed by the sample's video id) or a folder of the original's
legacy ``.pkl`` files (the file named by the record's field for that cue, e.g. ``"object":
"<id>_object.pkl"``). At set-up every sample is pre-scanned, and the outcome is counted in a `DataReport`:

- placeholders of cues the run does not use are removed from the text;
- a used cue whose feature file is missing is dropped from the sample (its placeholder removed), or, with
  ``missing_cue="zeros"``, gets zero features as the original does ((356, 1024) video, (256, 216) pose,
  (8, 512) object: one item for cues with per-item rows);
- a sample that names cues but has features for none of the used ones is skipped (a sample that names no
  cue at all is text-only instruction data and is kept);
- every feature file a kept sample uses is read once in full: a sample whose file holds NaN or inf, whose
  file cannot be read (corrupt, truncated, a pickle that is not a plain numpy array), or whose legacy file
  name leaves the features folder (an absolute path, or ``..`` going up out of it) is skipped, with the
  file and the problem in the report's example (a ``video`` field going up with ``..`` gives no video id: the
  instruction file itself is refused, naming the record);
- a sample whose tokens do not fit ``model_max_length`` without cutting a placeholder run is skipped.

Nothing is skipped silently: the report says how many samples went and why. A feature file whose rows do not
fit its cue (another width, a row count the cue does not take) is an error naming it: that is a model and
features that do not belong together, not one bad file. Modality dropout zeroes a cue's
features for a sample with the cue's probability, drawn from (seed, epoch, sample, cue), so a resumed or
distributed run draws the same. Object features ``(n, 8, 512)`` are flattened to ``(8n, 512)``.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from llavidal_core.cues import CueSpec
from llavidal_core.data.instructions import (InstructionFormatError, InstructionSample, convert_videoinstruct,
                                             parse_instruction_record, read_instruction_file)
from llavidal_core.errors import FeatureStoreError, LlavidalError, UnsafePickleError
from llavidal_core.features import FeatureStore, iter_feature_files
from llavidal_core.finite import NonFiniteError
from llavidal_core.legacy_features import LEGACY_EXTENSION, LEGACY_SUFFIXES, read_legacy_features
from llavidal_core.processing import LlavidalProcessor, SequenceTooLongError

MISSING_CUE_POLICIES = ("drop", "zeros")
SKIP_ALL_CUES_MISSING = "all cue features missing"
SKIP_NO_USED_CUE = "names only cues this run does not use"
SKIP_TOO_LONG = "too long for model_max_length"
SKIP_NON_FINITE = "features not finite (NaN or inf)"
SKIP_UNREADABLE = "feature file unreadable"
SKIP_OUTSIDE_FOLDER = "feature file path leaves its folder"


class FeaturePathOutsideFolderError(FeatureStoreError):
    """A data file names a feature file outside the features folder (an absolute path, or ``..`` going up)."""


def read_training_samples(path: str | Path) -> list[InstructionSample]:
    """The samples of an ADL-X style file, or of a raw Video-ChatGPT ``[{video_id, q, a}]`` file converted with
    the original's rule (`convert_videoinstruct`: ``q\n<video>`` for even records, ``<video>\nq`` for odd)."""
    try:
        return read_instruction_file(path)
    except InstructionFormatError:
        raw = _videoinstruct_records(Path(path))
        if raw is None:
            raise
    return [parse_instruction_record(record, index) for index, record in enumerate(convert_videoinstruct(raw))]


def _videoinstruct_records(path: Path) -> list | None:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(records, list) and records and all(
            isinstance(r, dict) and {"video_id", "q", "a"} <= set(r) and "conversations" not in r for r in records):
        return records
    return None


# -- feature sources ---------------------------------------------------------------------------------------------

class StoreFeatureSource:
    """One cue's features in a feature store, looked up by the sample's video id."""

    def __init__(self, store: FeatureStore, cue: str):
        self.store, self.cue = store, cue

    def describe(self, sample: InstructionSample) -> str:
        return f"{self.store.path_for(sample.video_id)} [{self.cue}]"

    def has(self, sample: InstructionSample) -> bool:
        return sample.video_id in self.store and self.store.has(sample.video_id, self.cue)

    def read(self, sample: InstructionSample) -> torch.Tensor:
        """The tensor, any shape; `FeatureStoreError` if unreadable, `NonFiniteError` if it holds NaN or inf."""
        return self.store.read(sample.video_id, self.cue)


class LegacyFeatureSource:
    """One cue's features in a folder of legacy ``.pkl`` files, read with the numpy-only unpickler."""

    def __init__(self, folder: Path, cue: str):
        self.folder, self.cue = folder, cue

    def path(self, sample: InstructionSample) -> Path:
        """The file the record names for the cue (default ``<video_id><cue suffix>.pkl``) inside the folder;
        `FeaturePathOutsideFolderError` for a name that is absolute or goes up out of the folder."""
        name = sample.feature_files.get(self.cue)
        if name is None:
            name = f"{sample.video_id}{LEGACY_SUFFIXES.get(self.cue, '_' + self.cue)}{LEGACY_EXTENSION}"
        relative = os.path.normpath(name)
        if os.path.isabs(relative) or relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise FeaturePathOutsideFolderError(
                f"its {self.cue!r} feature file {name!r} is outside the features folder {self.folder} (give a path "
                "under the folder)")
        return self.folder / relative

    def describe(self, sample: InstructionSample) -> str:
        return str(self.path(sample))

    def has(self, sample: InstructionSample) -> bool:
        return self.path(sample).is_file()

    def read(self, sample: InstructionSample) -> torch.Tensor:
        """The array as a tensor, any shape; raises as `read_legacy_features` does."""
        return torch.from_numpy(read_legacy_features(self.path(sample), self.cue))


def open_feature_source(folder: str | Path, cue: str) -> StoreFeatureSource | LegacyFeatureSource:
    """A feature store when ``folder`` holds ``*.safetensors`` feature files (sub-folders included), else a
    legacy ``.pkl`` folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FeatureStoreError(f"cue {cue!r}: no such features folder {folder}")
    if next(iter_feature_files(folder), None) is not None:
        return StoreFeatureSource(FeatureStore(folder, create=False), cue)
    return LegacyFeatureSource(folder, cue)


# -- the pre-scan report ------------------------------------------------------------------------------------------

@dataclass
class DataReport:
    """What the pre-scan found: samples read and kept, skips by reason, per-cue drops and zero fills."""

    samples: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    missing_dropped: Counter = field(default_factory=Counter)
    missing_zero_filled: Counter = field(default_factory=Counter)
    unused_placeholders_removed: Counter = field(default_factory=Counter)
    skipped_examples: dict = field(default_factory=dict)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples, "kept": self.kept, "skipped": self.num_skipped,
            "skipped_by_reason": dict(self.skipped),
            "missing_cue_dropped": dict(self.missing_dropped),
            "missing_cue_zero_filled": dict(self.missing_zero_filled),
            "unused_placeholders_removed": dict(self.unused_placeholders_removed),
            "skipped_examples": dict(self.skipped_examples),
        }

    def lines(self) -> list[str]:
        lines = [f"data: {self.kept} of {self.samples} samples kept, {self.num_skipped} skipped"]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped ({reason}): {count}, e.g. {self.skipped_examples[reason]}")
        for label, counts in (("missing feature file, placeholder dropped", self.missing_dropped),
                              ("missing feature file, zero features", self.missing_zero_filled),
                              ("placeholder of an unused cue removed", self.unused_placeholders_removed)):
            for cue, count in sorted(counts.items()):
                lines.append(f"  {label} [{cue}]: {count}")
        return lines

    def skip(self, reason: str, sample: InstructionSample, detail: str | None = None) -> None:
        self.skipped[reason] += 1
        example = f"sample {sample.index} ({sample.sample_id})"
        self.skipped_examples.setdefault(reason, f"{example}: {detail}" if detail else example)


@dataclass(frozen=True)
class PreparedSample:
    """A kept sample: its conversation with the placeholders it keeps, and where each cue's rows come from."""

    sample: InstructionSample
    conversation: tuple[dict[str, str], ...]
    cue_sources: dict[str, str]  # cue -> "file" | "zeros"
    num_tokens: int


# -- the dataset ------------------------------------------------------------------------------------------------

class InstructionDataset(torch.utils.data.Dataset):
    """Samples ready for `InstructionCollator`: ``{"conversation", "cue_features": {cue: (rows, dim)}}``.

    Args:
        samples: the instruction file's samples.
        processor: the processor of the model (its cues may be more than ``cues``).
        sources: ``{cue: feature source}`` for every cue in ``cues``.
        cues: the cues this run uses; placeholders of every other cue the processor knows (and of
            ``other_placeholders``) are removed from the text.
        missing_cue: ``"drop"`` or ``"zeros"``.
        dropout: ``{cue: probability}`` of zeroing a cue's features for a sample.
        seed: seeds the dropout draws.
        cache_features: keep each feature tensor in memory after its first read (checked once, read once).
    """

    def __init__(self, samples: Sequence[InstructionSample], processor: LlavidalProcessor,
                 sources: Mapping[str, Any], cues: Sequence[str], *, missing_cue: str = "drop",
                 dropout: Mapping[str, float] | None = None, seed: int = 0,
                 other_placeholders: Mapping[str, str] | None = None, cache_features: bool = False):
        if missing_cue not in MISSING_CUE_POLICIES:
            raise ValueError(f"missing_cue must be one of {MISSING_CUE_POLICIES}, got {missing_cue!r}")
        specs = {spec.name: spec for spec in processor.cues}
        unknown = [cue for cue in cues if cue not in specs]
        if unknown:
            raise ValueError(f"cues {unknown} are not among the processor's cues {list(specs)}")
        self.processor = processor
        self.cues = tuple(cues)
        self.specs = {cue: specs[cue] for cue in self.cues}
        self.sources = {cue: sources[cue] for cue in self.cues}
        self.missing_cue = missing_cue
        self.dropout = {cue: float(p) for cue, p in (dropout or {}).items() if p}
        self.seed = seed
        self.epoch = 0
        placeholders = {spec.placeholder: spec.name for spec in processor.cues}
        placeholders.update({p: c for p, c in (other_placeholders or {}).items() if p not in placeholders})
        self.unused_placeholders = {p: c for p, c in placeholders.items() if c not in self.cues}
        self.report = DataReport()
        self._checked_files: dict[str, tuple[int, ...] | LlavidalError] = {}
        self._feature_cache: dict[tuple[str, str], torch.Tensor] | None = {} if cache_features else None
        self.items = [item for item in (self._prepare(sample) for sample in samples) if item is not None]
        self.report.samples, self.report.kept = len(samples), len(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Give the modality dropout a new draw per epoch (the trainer calls this)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        features = {}
        for cue, origin in item.cue_sources.items():
            if origin == "zeros":
                tensor = self.zero_features(cue)
            else:
                tensor = self._read(item.sample, cue)
            if self._drops(index, cue):
                tensor = torch.zeros_like(tensor)
            features[cue] = tensor
        return {"conversation": item.conversation, "cue_features": features}

    def feature_files(self, cue: str) -> list[InstructionSample]:
        """One kept sample per distinct feature file of ``cue`` (samples about the same video share one)."""
        seen, samples = set(), []
        for item in self.items:
            if item.cue_sources.get(cue) == "file":
                where = self.sources[cue].describe(item.sample)
                if where not in seen:
                    seen.add(where)
                    samples.append(item.sample)
        return samples

    def feature_statistics(self, cue: str, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-dimension mean and standard deviation of ``cue``'s rows over its distinct feature files
        (each counted once, however many samples use it); returns ``(mean, std, rows)``."""
        from tqdm.auto import tqdm

        from llavidal_core.modeling.standardize import feature_statistics

        files = self.feature_files(cue)
        if not files:
            raise LlavidalError(f"cue {cue!r}: no sample has a feature file to fit its statistics on")
        tensors = (self._read(sample, cue) for sample in
                   tqdm(files, desc=f"{cue} feature statistics", unit="file", disable=True if not progress else None))
        return feature_statistics(tensors, self.specs[cue].feature_dim)

    def zero_features(self, cue: str) -> torch.Tensor:
        spec = self.specs[cue]
        return torch.zeros(spec.num_tokens or spec.tokens_per_item, spec.feature_dim)

    # -- set-up --------------------------------------------------------------------------------------------

    def _prepare(self, sample: InstructionSample) -> PreparedSample | None:
        remove = set()
        for placeholder, cue in self.unused_placeholders.items():
            if sample.mentions(placeholder):
                self.report.unused_placeholders_removed[cue] += 1
                remove.add(placeholder)
        named = [cue for cue in self.cues if sample.mentions(self.specs[cue].placeholder)]
        if not named:
            if remove:
                self.report.skip(SKIP_NO_USED_CUE, sample)
                return None
            return self._encoded(sample, sample.conversation, {}, {})  # a text-only sample
        try:
            present = [cue for cue in named if self.sources[cue].has(sample)]
            shapes = {cue: self._checked_shape(sample, cue) for cue in present}
        except FeaturePathOutsideFolderError as exc:
            self.report.skip(SKIP_OUTSIDE_FOLDER, sample, str(exc))
            return None
        except NonFiniteError as exc:
            self.report.skip(SKIP_NON_FINITE, sample, str(exc))
            return None
        except (FeatureStoreError, UnsafePickleError) as exc:
            self.report.skip(SKIP_UNREADABLE, sample, str(exc))
            return None
        if not present:
            self.report.skip(SKIP_ALL_CUES_MISSING, sample)
            return None
        origins, rows = {}, {}
        for cue in named:
            if cue in present:
                origins[cue], rows[cue] = "file", self._rows(sample, cue, shapes[cue])
            elif self.missing_cue == "zeros":
                self.report.missing_zero_filled[cue] += 1
                origins[cue], rows[cue] = "zeros", self.processor.cue_rows(cue, self.zero_features(cue))
            else:
                self.report.missing_dropped[cue] += 1
                remove.add(self.specs[cue].placeholder)
        conversation = tuple({"from": turn["from"], "value": _remove_all(turn["value"], remove)}
                             for turn in sample.conversation)
        return self._encoded(sample, conversation, origins, rows)

    def _encoded(self, sample, conversation, origins, rows) -> PreparedSample | None:
        try:
            encoded = self.processor.encode(conversation, rows, sample_index=sample.index)
        except SequenceTooLongError:
            self.report.skip(SKIP_TOO_LONG, sample)
            return None
        except ValueError as exc:
            raise LlavidalError(f"sample {sample.index} ({sample.sample_id}): {exc}") from None
        return PreparedSample(sample, conversation, origins, len(encoded.input_ids))

    def _checked_shape(self, sample: InstructionSample, cue: str) -> tuple[int, ...]:
        """The shape of the sample's ``cue`` features, read in full once per file (samples sharing a file share
        the outcome): raises what reading raises, for a missing or unreadable file or NaN or inf in it."""
        where = self.sources[cue].describe(sample)
        if where not in self._checked_files:
            try:
                self._checked_files[where] = tuple(self.sources[cue].read(sample).shape)
            except (FeatureStoreError, UnsafePickleError, NonFiniteError) as exc:
                self._checked_files[where] = exc
        outcome = self._checked_files[where]
        if isinstance(outcome, LlavidalError):
            raise outcome
        return outcome

    def _rows(self, sample: InstructionSample, cue: str, shape: tuple[int, ...]) -> int:
        """The cue's row count for features of ``shape``; an error naming the file if the cue cannot take them."""
        source = self.sources[cue]
        try:
            return self.processor.cue_rows(cue, torch.empty(shape, device="meta"))
        except ValueError as exc:
            raise FeatureStoreError(f"{source.describe(sample)}: {exc}") from None

    def _read(self, sample: InstructionSample, cue: str) -> torch.Tensor:
        if self._feature_cache is not None:
            key = (sample.video_id, cue)
            if key not in self._feature_cache:
                self._feature_cache[key] = self._read_file(sample, cue)
            return self._feature_cache[key]
        return self._read_file(sample, cue)

    def _read_file(self, sample: InstructionSample, cue: str) -> torch.Tensor:
        source = self.sources[cue]
        tensor = source.read(sample)
        try:
            self.processor.cue_rows(cue, tensor)
        except ValueError as exc:
            raise FeatureStoreError(f"{source.describe(sample)}: {exc}") from None
        return tensor.reshape(-1, self.specs[cue].feature_dim).float()

    def _drops(self, index: int, cue: str) -> bool:
        probability = self.dropout.get(cue, 0.0)
        if not probability:
            return False
        return random.Random(f"{self.seed}/{self.epoch}/{index}/{cue}").random() < probability


def _remove_all(text: str, placeholders: set[str]) -> str:
    for placeholder in placeholders:
        text = text.replace(placeholder, "")
    return text


class InstructionCollator:
    """Batches `InstructionDataset` items with the processor: padded ids, labels and stacked features."""

    def __init__(self, processor: LlavidalProcessor):
        self.processor = processor

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.processor([item["conversation"] for item in items],
                              [item["cue_features"] for item in items])


def placeholders_of(specs: Sequence[CueSpec]) -> dict[str, str]:
    """``{placeholder: cue}`` of ``specs``."""
    return {spec.placeholder: spec.name for spec in specs}
