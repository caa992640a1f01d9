"""Reading and writing checkpoint folders tensor by tensor (safetensors or ``.bin``, single file or shards).

`CheckpointReader` maps every tensor name to its file and loads one tensor at a time: safetensors through
``safe_open`` and ``.bin`` shards through a memory-mapped ``torch.load(weights_only=True)``, so reading a 7B
checkpoint never holds it all in memory. `ShardWriter` writes shards and the transformers index for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llavidal_core.errors import LlavidalError

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_SINGLE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".index.json")


class ConversionError(LlavidalError):
    """A checkpoint cannot be converted: missing files, unexpected keys or shapes."""


def resolve_folder(path_or_repo_id: str | os.PathLike) -> Path:
    """A local checkpoint folder, or the snapshot of a Hub repo (downloaded or taken from the cache)."""
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path_or_repo_id)))


class CheckpointReader:
    """The tensors of one checkpoint folder, read lazily, shard by shard."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._open_bin: tuple[str, dict[str, torch.Tensor]] | None = None
        self.weight_map = self._find_weight_map()

    def _find_weight_map(self) -> dict[str, str]:
        for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
            index = self.folder / index_name
            if index.is_file():
                return dict(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
        single = self.folder / SAFETENSORS_SINGLE
        if single.is_file():
            with safe_open(single, framework="pt") as reader:
                return {key: single.name for key in reader.keys()}
        single = self.folder / BIN_SINGLE
        if single.is_file():
            return {key: single.name for key in self._load_bin(single.name)}
        raise ConversionError(f"{self.folder}: no model weights ({SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, {BIN_SINGLE} "
                              f"or {BIN_INDEX})")

    @property
    def shards(self) -> list[str]:
        """The weight files, in the order their first tensor appears in the index."""
        return list(dict.fromkeys(self.weight_map.values()))

    def keys_in(self, shard: str) -> list[str]:
        return [key for key, file in self.weight_map.items() if file == shard]

    def get(self, key: str) -> torch.Tensor:
        if key not in self.weight_map:
            raise ConversionError(f"{self.folder}: no tensor named {key!r}")
        shard = self.weight_map[key]
        if shard.endswith(".safetensors"):
            with safe_open(self.folder / shard, framework="pt") as reader:
                return reader.get_tensor(key)
        return self._load_bin(shard)[key]

    def iter_shard(self, shard: str) -> Iterator[tuple[str, torch.Tensor]]:
        for key in self.keys_in(shard):
            yield key, self.get(key)

    def _load_bin(self, shard: str) -> dict[str, torch.Tensor]:
        if self._open_bin is None or self._open_bin[0] != shard:
            state = torch.load(self.folder / shard, map_location="cpu", weights_only=True, mmap=True)
            self._open_bin = (shard, state)
        return self._open_bin[1]


class ShardWriter:
    """Writes ``model-0000i-of-0000n.safetensors`` shards (or one ``model.safetensors``) and their index."""

    def __init__(self, folder: str | os.PathLike, num_shards: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.num_shards = num_shards
        self.weight_map: dict[str, str] = {}
        self.total_size = 0
        self._written = 0

    def write(self, tensors: dict[str, torch.Tensor]) -> str:
        self._written += 1
        name = SAFETENSORS_SINGLE
        if self.num_shards > 1:
            name = f"model-{self._written:05d}-of-{self.num_shards:05d}.safetensors"
        contiguous = {key: value.contiguous() for key, value in tensors.items()}
        save_file(contiguous, self.folder / name, metadata={"format": "pt"})
        for key, value in tensors.items():
            self.weight_map[key] = name
            self.total_size += value.numel() * value.element_size()
        return name

    def finish(self) -> None:
        if self.num_shards > 1:
            index = {"metadata": {"total_size": self.total_size}, "weight_map": dict(sorted(self.weight_map.items()))}
            (self.folder / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def is_weight_file(name: str) -> bool:
    return name.endswith(WEIGHT_FILE_SUFFIXES)
