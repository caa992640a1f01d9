"""`apply_delta`: rebuild released weights from a base LM and a delta (LLaVA's ``apply_delta``, streamed).

The target is ``base + delta`` tensor by tensor. Where the delta has more rows than the base (the grown
``embed_tokens``/``lm_head``), the base is added to its leading rows and the extra rows are the delta's as is;
tensors only the delta has (projectors) are kept as they are. The work goes one delta shard at a time, base
tensors being read one by one (memory-mapped), so a 7B model never needs two full copies in memory. The
delta's other files (config, tokenizer) are copied: they describe the target.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llavidal_core.conversion.checkpoints import (
    CheckpointReader,
    ConversionError,
    ShardWriter,
    is_weight_file,
    resolve_folder,
)


@dataclass
class DeltaReport:
    out: Path
    shards: int = 0
    tensors: int = 0
    delta_only: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {self.tensors} tensors in {self.shards} shard(s) to {self.out}"]
        if self.grown:
            lines.append(f"rows beyond the base taken from the delta as is: {', '.join(self.grown)}")
        if self.delta_only:
            lines.append(f"tensors only the delta has, kept as is: {', '.join(self.delta_only)}")
        return "\n".join(lines)


def apply_delta(base: str | os.PathLike, delta: str | os.PathLike, out: str | os.PathLike) -> DeltaReport:
    base_reader = CheckpointReader(resolve_folder(base))
    delta_folder = resolve_folder(delta)
    delta_reader = CheckpointReader(delta_folder)
    out = Path(out)
    report = DeltaReport(out)
    writer = ShardWriter(out, len(delta_reader.shards))
    for shard in delta_reader.shards:
        target: dict[str, torch.Tensor] = {}
        for key, delta_tensor in delta_reader.iter_shard(shard):
            if key not in base_reader.weight_map:
                report.delta_only.append(key)
                target[key] = delta_tensor.clone()
                continue
            target[key] = add_base(key, base_reader.get(key), delta_tensor, report)
        writer.write(target)
        report.shards += 1
        report.tensors += len(target)
    writer.finish()
    for item in delta_folder.iterdir():
        if item.is_file() and not is_weight_file(item.name):
            shutil.copy2(item, out / item.name)
    return report


def add_base(key: str, base: torch.Tensor, delta: torch.Tensor, report: DeltaReport) -> torch.Tensor:
    """``delta + base``; a delta with more rows keeps its extra rows."""
    if base.shape == delta.shape:
        return (delta.to(torch.float32) + base.to(torch.float32)).to(delta.dtype)
    if base.ndim != delta.ndim or base.shape[1:] != delta.shape[1:] or base.shape[0] > delta.shape[0]:
        raise ConversionError(f"tensor {key!r}: base shape {tuple(base.shape)} does not fit delta shape "
                              f"{tuple(delta.shape)} (only extra leading rows are allowed)")
    target = delta.clone()
    rows = base.shape[0]
    target[:rows] = (delta[:rows].to(torch.float32) + base.to(torch.float32)).to(delta.dtype)
    report.grown.append(key)
    return target
