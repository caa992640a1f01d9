"""The feature store: one safetensors file per video holding every cue's tensor, written atomically.

A store is a folder of ``<video_id>.safetensors`` files; a video id may hold ``/`` (`llavidal_core.video_ids`),
so TSU's ``P03/P03T01C05/clips/clip_1`` lives at ``P03/P03T01C05/clips/clip_1.safetensors`` under the store's
root and stores written with plain-name ids stay flat. Each file holds one tensor per cue, keyed by the
cue's name (``video``, ``pose``, ``object``, ...), and string metadata in the safetensors header: per cue
``"<cue>.<key>"`` (the caller's keys plus ``dtype``, ``shape`` and ``llavidal_version``), and per file
``format`` and ``format_version``. Reads are memory-mapped. A write replaces the file through a temp file
in its folder and ``os.replace``, so a killed writer leaves either the old file or the new one, never half
of one. Writing a cue reads the file's other cues and rewrites the whole file while holding an exclusive lock
on ``.<name>.lock`` beside it (`llavidal_core.atomic_files.exclusive_lock`), so processes writing different
cues of one video at the same time (``extract pose`` and ``extract video`` into one folder) keep every cue.

Features are finite: `FeatureStore.write` refuses a tensor holding NaN or inf, and `FeatureStore.read` /
`FeatureStore.read_all` refuse a stored one (`llavidal_core.finite.NonFiniteError`, naming the file and the
cue). A file that is not readable safetensors at all (truncated, overwritten) raises
`CorruptFeatureFileError`; writing a cue into such a file raises it too, unless the writer asks for
``replace_corrupt`` (the extraction commands and ``features import-pkl`` do): the file is then replaced by one
holding only that cue, and a warning names it. A readable file from elsewhere or from a newer llavidal is
never replaced.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import safetensors
import torch
from safetensors.torch import save as serialize_tensors

from llavidal_core import __version__
from llavidal_core.atomic_files import atomic_write_bytes, exclusive_lock, remove_stale_temp_files
from llavidal_core.cues import CUE_NAME_PATTERN
from llavidal_core.errors import FeatureStoreError
from llavidal_core.finite import check_finite
from llavidal_core.video_ids import check_video_id

FILE_SUFFIX = ".safetensors"
FORMAT_NAME = "llavidal-features"
FORMAT_VERSION = "1"

logger = logging.getLogger(__name__)


class CorruptFeatureFileError(FeatureStoreError):
    """A feature file that is not readable safetensors (truncated, overwritten, not safetensors at all)."""


def iter_feature_files(root: str | os.PathLike) -> Iterator[tuple[str, Path]]:
    """``(video_id, path)`` of every feature file under ``root``, sub-folders included, in no set order.

    Hidden files and folders (temp files of unfinished writes among them) and names that are no valid
    video id are left out.
    """
    root = Path(root)
    for path in root.rglob(f"*{FILE_SUFFIX}"):
        relative = path.relative_to(root).as_posix()
        video_id = relative[: -len(FILE_SUFFIX)]
        if _is_valid_video_id(video_id) and path.is_file():
            yield video_id, path


class FeatureStore:
    """A folder of per-video safetensors feature files."""

    def __init__(self, root: str | os.PathLike, *, create: bool = True) -> None:
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise FeatureStoreError(f"{self.root}: no such feature store folder")

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    # -- paths and listing ------------------------------------------------------------------------------

    def path_for(self, video_id: str) -> Path:
        """The file that holds ``video_id``'s features (whether or not it exists yet)."""
        check_video_id(video_id)
        return self.root / f"{video_id}{FILE_SUFFIX}"

    def video_ids(self) -> list[str]:
        """Every video with a feature file, sub-folders included, sorted (see `iter_feature_files`)."""
        return sorted(video_id for video_id, _ in iter_feature_files(self.root))

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and _is_valid_video_id(video_id) and self.path_for(video_id).is_file()

    def __len__(self) -> int:
        return len(self.video_ids())

    def __iter__(self) -> Iterator[str]:
        return iter(self.video_ids())

    def remove_stale_temp_files(self, before: float | None = None) -> int:
        """Delete the temp files of writers that are gone, sub-folders included; returns how many.

        A temp file counts as gone when it was last modified at or before ``before`` (seconds since the
        epoch, default now) and no writer holds its lock (`llavidal_core.atomic_files.remove_stale_temp_files`),
        so it is safe while other processes write.
        """
        return len(remove_stale_temp_files(self.root, before=time.time() if before is None else before))

    # -- reading ----------------------------------------------------------------------------------------

    def has(self, video_id: str, cue: str) -> bool:
        """Whether ``video_id``'s file holds ``cue`` (reads the header only; a corrupt file raises)."""
        path = self.path_for(video_id)
        if not path.is_file():
            return False
        return cue in self._header(path, video_id)[0]

    def cues(self, video_id: str) -> list[str]:
        """The cues stored for ``video_id``, sorted."""
        path = self.path_for(video_id)
        return sorted(self._header(path, video_id)[0])

    def read(self, video_id: str, cue: str) -> torch.Tensor:
        """One cue's tensor, memory-mapped, with the dtype and shape it was written with.

        Raises `FeatureStoreError` for a missing file or cue (`CorruptFeatureFileError` for an unreadable
        file) and `llavidal_core.finite.NonFiniteError` when the tensor holds NaN or inf.
        """
        path = self.path_for(video_id)
        with self._open(path, video_id) as handle:
            _require_cue(path, cue, list(handle.keys()))
            return _finite_tensor(path, handle, cue)

    def read_all(self, video_id: str) -> dict[str, torch.Tensor]:
        """Every cue's tensor for ``video_id``, by cue name; raises as `read` does."""
        path = self.path_for(video_id)
        with self._open(path, video_id) as handle:
            return {cue: _finite_tensor(path, handle, cue) for cue in handle.keys()}

    def metadata(self, video_id: str, cue: str) -> dict[str, str]:
        """One cue's metadata, keys without the ``"<cue>."`` prefix."""
        path = self.path_for(video_id)
        cues, metadata = self._header(path, video_id)
        _require_cue(path, cue, cues)
        return _cue_metadata(metadata, cue)

    @contextmanager
    def _open(self, path: Path, video_id: str) -> Iterator[safetensors.safe_open]:
        """``safe_open`` on a llavidal feature file; every failure becomes a `FeatureStoreError`."""
        if not path.is_file():
            raise FeatureStoreError(f"{path}: no features for video {video_id!r}")
        try:
            handle = safetensors.safe_open(path, framework="pt")
        except (safetensors.SafetensorError, OSError) as exc:
            raise CorruptFeatureFileError(f"{path}: not a readable safetensors file ({exc})") from exc
        with handle:
            _check_format(path, handle.metadata() or {})
            yield handle

    def _header(self, path: Path, video_id: str) -> tuple[list[str], dict[str, str]]:
        with self._open(path, video_id) as handle:
            return list(handle.keys()), dict(handle.metadata() or {})

    # -- writing ----------------------------------------------------------------------------------------

    def write(self, video_id: str, cue: str, tensor: torch.Tensor,
              metadata: Mapping[str, str] | None = None, *, replace_corrupt: bool = False) -> Path:
        """Store ``tensor`` (any shape and dtype) as ``video_id``'s ``cue``, replacing that cue and keeping the
        file's others, under the file's lock (module docstring).

        The tensor is kept exactly (dtype included), made contiguous and moved to the CPU. ``metadata``
        values must be strings; the store sets ``dtype``, ``shape`` and ``llavidal_version`` itself
        (overriding any given under those keys). Raises `llavidal_core.finite.NonFiniteError` (nothing is
        written) when the tensor holds NaN or inf, `CorruptFeatureFileError` when the existing file is not
        readable safetensors (with ``replace_corrupt``: a warning, and the file is replaced), and
        `FeatureStoreError` when it is readable but not one this llavidal may rewrite (another format, a
        newer format version).
        """
        path = self.path_for(video_id)
        if not isinstance(cue, str) or not CUE_NAME_PATTERN.match(cue):
            raise ValueError(f"invalid cue name {cue!r}: use lower-case letters, digits and underscores, "
                             "starting with a letter")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"features for cue {cue!r} of video {video_id!r} must be a torch.Tensor, "
                            f"got {type(tensor).__name__}")
        for key, value in (metadata or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"metadata of cue {cue!r} must map str keys to str values; "
                                f"key {key!r} holds a {type(value).__name__}")

        tensor = tensor.detach().to("cpu").contiguous()
        check_finite(tensor, f"{path} [{cue}]")
        cue_metadata = dict(metadata or {})
        cue_metadata.update(dtype=str(tensor.dtype).removeprefix("torch."), shape=json.dumps(list(tensor.shape)),
                            llavidal_version=__version__)
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path):
            tensors, header = self._other_cues(path, video_id, cue, replace_corrupt)
            tensors[cue] = tensor
            header.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION})
            header.update({f"{cue}.{key}": value for key, value in cue_metadata.items()})
            atomic_write_bytes(path, serialize_tensors(tensors, metadata=header))
        return path

    def _other_cues(self, path: Path, video_id: str, cue: str,
                    replace_corrupt: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The tensors and header entries of every cue but ``cue`` in ``path``; none for a missing file, and
        with ``replace_corrupt`` none (and a warning) for a corrupt one, which the caller then replaces."""
        if not path.is_file():
            return {}, {}
        try:
            with self._open(path, video_id) as handle:
                tensors = {name: _tensor(path, handle, name) for name in handle.keys() if name != cue}
                header = {key: value for key, value in (handle.metadata() or {}).items()
                          if not key.startswith(f"{cue}.")}
        except CorruptFeatureFileError as exc:
            if not replace_corrupt:
                raise
            logger.warning("%s; replacing it with a file holding only the %r features", exc, cue)
            return {}, {}
        return tensors, header


def _is_valid_video_id(video_id: str) -> bool:
    try:
        check_video_id(video_id)
    except ValueError:
        return False
    return True


def _tensor(path: Path, handle, cue: str) -> torch.Tensor:
    try:
        return handle.get_tensor(cue)
    except (safetensors.SafetensorError, OSError) as exc:
        raise CorruptFeatureFileError(f"{path}: the {cue!r} tensor is not readable ({exc})") from exc


def _finite_tensor(path: Path, handle, cue: str) -> torch.Tensor:
    tensor = _tensor(path, handle, cue)
    check_finite(tensor, f"{path} [{cue}]")
    return tensor


def _check_format(path: Path, metadata: Mapping[str, str]) -> None:
    if metadata.get("format") != FORMAT_NAME:
        raise FeatureStoreError(f"{path}: not a llavidal feature file (its header has no "
                                f"'format': {FORMAT_NAME!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise FeatureStoreError(f"{path}: written in feature format version {metadata.get('format_version')!r}; "
                                f"this llavidal reads version {FORMAT_VERSION} (upgrade llavidal-core)")


def _require_cue(path: Path, cue: str, cues: list[str]) -> None:
    if cue not in cues:
        held = ", ".join(sorted(cues)) or "no cues"
        raise FeatureStoreError(f"{path}: no {cue!r} features (the file holds: {held})")


def _cue_metadata(metadata: Mapping[str, str], cue: str) -> dict[str, str]:
    prefix = f"{cue}."
    return {key[len(prefix):]: value for key, value in metadata.items() if key.startswith(prefix)}
