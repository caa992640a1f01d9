"""`apply_delta`: rebuild released weights from a base LM and a delta (LLaVA's ``apply_delta``, streamed).

The target is ``base + delta`` tensor by tensor. Before anything is written, the two checkpoints are matched
name by name and shape by shape, and every misfit is one `ConversionError` naming the tensors: a base tensor
the delta lacks (the output would lack it, and loading would initialise it at random), a delta tensor the
base lacks (other than a projector, ``*mm_projector*``, which only the delta has and is kept as is), and a
shape that differs (only the vocabulary tensors, ``embed_tokens`` and ``lm_head``, may have extra rows: the
base is added to their leading rows and the extra rows are the delta's). Rotary ``inv_freq`` buffers, which
older checkpoints saved and transformers recomputes at load, may be on one side only; they are left out.

The work goes one delta shard at a time, base tensors being read one by one (memory-mapped), so a 7B model
never needs two full copies in memory. The delta's other files (config, tokenizer) are copied: they
describe the target. Everything is written into a staging folder beside ``out`` that is renamed to ``out``
at the end, so a failed or interrupted run leaves no half-written output and an existing ``out`` untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llavidal_core.conversion.checkpoints import (
    CheckpointReader,
    ConversionError,
    ShardWriter,
    check_output_folder,
    is_weight_file,
    resolve_folder,
    staged_output_folder,
)

logger = logging.getLogger(__name__)

VOCABULARY_TENSORS = ("embed_tokens.weight", "lm_head.weight")
PROJECTOR_MARK = "mm_projector"
RECOMPUTED_BUFFERS = ("rotary_emb.inv_freq",)
NAMES_SHOWN = 8


@dataclass
class DeltaReport:
    """What `apply_delta` wrote: shard and tensor counts, and the tensors it treated specially."""

    out: Path
    shards: int = 0
    tensors: int = 0
    delta_only: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    skipped_buffers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {self.tensors} tensors in {self.shards} shard(s) to {self.out}"]
        if self.grown:
            lines.append(f"rows beyond the base taken from the delta as is: {', '.join(self.grown)}")
        if self.delta_only:
            lines.append(f"projectors only the delta has, kept as is: {', '.join(self.delta_only)}")
        if self.skipped_buffers:
            lines.append(f"left out {len(self.skipped_buffers)} rotary inv_freq buffer(s) that only one side "
                         "has (transformers recomputes them at load)")
        return "\n".join(lines)


def apply_delta(base: str | os.PathLike, delta: str | os.PathLike, out: str | os.PathLike, *,
                overwrite: bool = False) -> DeltaReport:
    """Write ``base + delta`` to the folder ``out`` (safetensors, sharded as the delta is) with the delta's config.

    ``base`` and ``delta`` are checkpoint folders or Hub repo ids. Raises `ConversionError` before writing
    anything when the two do not match tensor for tensor (the message names the tensors), when ``out`` is an
    input folder or holds one, or when ``out`` is a non-empty folder and ``overwrite`` is false; on any
    failure while writing, ``out`` is left as it was.
    """
    base_folder, delta_folder, out = resolve_folder(base), resolve_folder(delta), Path(out)
    check_output_folder(out, overwrite=overwrite)
    for label, folder in (("base", base_folder), ("delta", delta_folder)):
        if out.resolve() == folder.resolve() or out.resolve() in folder.resolve().parents:
            raise ConversionError(f"{out}: the output folder would replace the {label} folder {folder}")
    base_reader, delta_reader = CheckpointReader(base_folder), CheckpointReader(delta_folder)
    report = DeltaReport(out)
    check_delta_fits_base(base_reader, delta_reader, report)
    with staged_output_folder(out, overwrite=overwrite) as staging:
        write_target(base_reader, delta_reader, staging, report)
        for item in delta_folder.iterdir():
            if item.is_file() and not is_weight_file(item.name):
                shutil.copy2(item, staging / item.name)
    logger.info("applied the delta %s to the base %s: %d tensors written to %s",
                delta_folder, base_folder, report.tensors, out)
    return report


def check_delta_fits_base(base: CheckpointReader, delta: CheckpointReader, report: DeltaReport) -> None:
    """One `ConversionError` listing every tensor missing on either side or of a shape that cannot be added."""
    base_keys, delta_keys = set(base.weight_map), set(delta.weight_map)
    report.skipped_buffers = sorted(key for key in base_keys ^ delta_keys if is_recomputed_buffer(key))
    missing = sorted(base_keys - delta_keys - set(report.skipped_buffers))
    extra = sorted(key for key in delta_keys - base_keys - set(report.skipped_buffers) if not is_projector(key))
    misfits = [describe_misfit(key, base.shape(key), delta.shape(key)) for key in sorted(base_keys & delta_keys)]
    misfits = [misfit for misfit in misfits if misfit]
    problems = []
    if missing:
        problems.append(f"{len(missing)} base tensor(s) missing from the delta (the output would lack them): "
                        f"{_names(missing)}")
    if extra:
        problems.append(f"{len(extra)} delta tensor(s) the base lacks: {_names(extra)}")
    if misfits:
        problems.append(f"{len(misfits)} shape mismatch(es): {_names(misfits)}")
    if problems:
        raise ConversionError(f"the delta {delta.folder} does not fit the base {base.folder}: " + "; ".join(problems))


def describe_misfit(key: str, base_shape: tuple[int, ...], delta_shape: tuple[int, ...]) -> str | None:
    """Why ``base + delta`` cannot be formed for ``key``, or None when it can."""
    if base_shape == delta_shape:
        return None
    grows_rows = (len(base_shape) == len(delta_shape) >= 1 and base_shape[1:] == delta_shape[1:]
                  and base_shape[0] < delta_shape[0])
    if grows_rows and key.endswith(VOCABULARY_TENSORS):
        return None
    return f"{key} (base {base_shape}, delta {delta_shape})"


def write_target(base: CheckpointReader, delta: CheckpointReader, folder: Path, report: DeltaReport) -> None:
    """Write ``base + delta`` into ``folder``, one delta shard at a time."""
    writer = ShardWriter(folder, len(delta.shards))
    for shard in delta.shards:
        target: dict[str, torch.Tensor] = {}
        for key, delta_tensor in delta.iter_shard(shard):
            if key in report.skipped_buffers:
                continue
            if key not in base.weight_map:
                report.delta_only.append(key)
                target[key] = delta_tensor.clone()
                continue
            target[key] = add_base(key, base.get(key), delta_tensor, report)
        writer.write(target)
        report.shards += 1
        report.tensors += len(target)
    writer.finish()


def add_base(key: str, base: torch.Tensor, delta: torch.Tensor, report: DeltaReport) -> torch.Tensor:
    """``delta + base`` (summed in float32, cast to the delta's dtype); a delta with more rows keeps its extra rows."""
    misfit = describe_misfit(key, tuple(base.shape), tuple(delta.shape))
    if misfit:
        raise ConversionError(f"shape mismatch: {misfit}")
    if base.shape == delta.shape:
        return (delta.to(torch.float32) + base.to(torch.float32)).to(delta.dtype)
    target = delta.clone()
    rows = base.shape[0]
    target[:rows] = (delta[:rows].to(torch.float32) + base.to(torch.float32)).to(delta.dtype)
    report.grown.append(key)
    return target


def is_projector(key: str) -> bool:
    """A multimodal projector tensor (``model.mm_projector*``), which a delta holds and its base does not."""
    return any(part.startswith(PROJECTOR_MARK) for part in key.split("."))


def is_recomputed_buffer(key: str) -> bool:
    return key.endswith(RECOMPUTED_BUFFERS)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"
