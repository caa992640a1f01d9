"""Reading and writing checkpoint folders tensor by tensor (safetensors or ``.bin``, single file or shards).

`CheckpointReader` maps every tensor name to its file and loads one tensor at a time: safetensors through
``safe_open`` and ``.bin`` shards through a memory-mapped ``torch.load(weights_only=True)``, so reading a 7B
checkpoint never holds it all in memory; a file that is missing or unreadable is a `ConversionError` naming
it. `ShardWriter` writes shards and the transformers index for them. `staged_output_folder` gives a folder
that appears at its final path whole, at the end, or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

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
                return read_weight_map(index)
        single = self.folder / SAFETENSORS_SINGLE
        if single.is_file():
            with self._open_safetensors(single.name) as reader:
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
        """The tensor ``key``, read from its shard; `ConversionError` if it or its shard cannot be read."""
        shard = self._shard_of(key)
        if shard.endswith(".safetensors"):
            with self._open_safetensors(shard) as reader:
                self._check_listed(reader.keys(), shard, key)
                return reader.get_tensor(key)
        return self._bin_tensor(shard, key)

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of tensor ``key``, read from its shard's header (safetensors) or its memory map (``.bin``)."""
        shard = self._shard_of(key)
        if shard.endswith(".safetensors"):
            with self._open_safetensors(shard) as reader:
                self._check_listed(reader.keys(), shard, key)
                return tuple(reader.get_slice(key).get_shape())
        return tuple(self._bin_tensor(shard, key).shape)

    def _shard_of(self, key: str) -> str:
        if key not in self.weight_map:
            raise ConversionError(f"{self.folder}: no tensor named {key!r}")
        return self.weight_map[key]

    @contextlib.contextmanager
    def _open_safetensors(self, shard: str) -> Iterator[Any]:
        path = self.folder / shard
        try:
            reader = safe_open(path, framework="pt")
        except Exception as exc:  # noqa: BLE001 - missing, truncated or not a safetensors file
            raise ConversionError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from exc
        with reader:
            yield reader

    def _bin_tensor(self, shard: str, key: str) -> torch.Tensor:
        state = self._load_bin(shard)
        self._check_listed(state, shard, key)
        return state[key]

    def _check_listed(self, keys, shard: str, key: str) -> None:
        if key not in keys:
            raise ConversionError(f"{self.folder / shard}: the index puts {key!r} in this file, but it is not there")

    def iter_shard(self, shard: str) -> Iterator[tuple[str, torch.Tensor]]:
        for key in self.keys_in(shard):
            yield key, self.get(key)

    def _load_bin(self, shard: str) -> dict[str, torch.Tensor]:
        if self._open_bin is None or self._open_bin[0] != shard:
            path = self.folder / shard
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as exc:  # noqa: BLE001 - missing, truncated, or a pickle of more than tensors
                raise ConversionError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from exc
            if not isinstance(state, dict):
                raise ConversionError(f"{path}: holds a {type(state).__name__}, not a dict of tensors")
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
        try:
            save_file(contiguous, self.folder / name, metadata={"format": "pt"})
        except Exception as exc:  # noqa: BLE001 - disk full, file too large, permissions
            raise ConversionError(f"{self.folder / name}: cannot write the weights ({type(exc).__name__}: "
                                  f"{exc})") from exc
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


def read_weight_map(index: Path) -> dict[str, str]:
    """``{tensor name: shard file}`` from a transformers index file; `ConversionError` naming it if malformed."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConversionError(f"{index}: not a readable weight index ({type(exc).__name__}: {exc})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConversionError(f"{index}: 'weight_map' must map tensor names to file names")
    return dict(weight_map)


@contextlib.contextmanager
def staged_output_folder(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write into, renamed to ``out`` when the ``with`` block succeeds.

    On any exception, KeyboardInterrupt included, the staging folder is removed and re-raised: ``out`` then
    holds what it held before. ``out`` may be missing or an empty folder; a non-empty folder is a
    `ConversionError` (raised before the block runs) unless ``overwrite``, in which case it is replaced whole
    at the end (never merged, so no file of an earlier run survives beside the new ones).
    """
    out = Path(out)
    check_output_folder(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(out, "tmp")
    staging.mkdir()
    try:
        yield staging
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output_folder(out: Path, *, overwrite: bool) -> None:
    """`ConversionError` if ``out`` is a file, or a non-empty folder and ``overwrite`` is false."""
    if out.exists() and not out.is_dir():
        raise ConversionError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConversionError(f"{out}: the output folder exists and is not empty; remove it or choose another one")


def _sibling(out: Path, kind: str) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _move_into_place(staging: Path, out: Path) -> None:
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(staging, out)
        return
    previous = _sibling(out, "old")
    os.rename(out, previous)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(previous, out)
        raise
    shutil.rmtree(previous)
