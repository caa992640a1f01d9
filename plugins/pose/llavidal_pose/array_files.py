"""Reading one array from a ``.npy`` file or an ``.npz`` member with its size checked before any data is read.

`read_array_file` reads the ``.npy`` header (format 1.0 or 2.0: shape, dtype, order) first, and refuses,
before anything is decompressed or allocated:

- object dtypes (they hold pickles, which are never loaded);
- arrays of more than ``max_bytes`` bytes (`MAX_ARRAY_BYTES` by default), whatever the file's size, so a
  small, highly compressed ``.npz`` (a zip bomb) cannot allocate gigabytes;
- arrays whose header declares more data than the file (or the zip member's declared uncompressed size)
  holds.

Only then are exactly the declared bytes read. Every error is a `SkeletonFormatError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from llavidal_pose.errors import SkeletonFormatError

MAX_ARRAY_BYTES = 256 * 2**20
"""The largest joint array read (256 MiB: about 450,000 frames of two float64 bodies)."""

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
PICKLE_REFUSAL = ("holds pickled Python objects (the official txt2npy.py writes a pickled dict), which are never "
                  "loaded; read the .skeleton file instead, or save the joints as a plain (T, M, V, 3) array")


def _size_text(num_bytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= size:
            return f"{num_bytes / size:.1f} {unit}"
    return f"{num_bytes} bytes"


def _read_header(handle: BinaryIO, path: Path, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The ``(shape, fortran_order, dtype)`` of the ``.npy`` stream at ``handle``'s position."""
    try:
        if handle.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise SkeletonFormatError(path, None, f"{where}not a numpy array file (no .npy magic)")
        version = tuple(handle.read(2))
        if version not in _HEADER_READERS:
            raise SkeletonFormatError(path, None, f"{where}numpy format version {'.'.join(map(str, version))} "
                                                  "is not read (only 1.0 and 2.0)")
        return _HEADER_READERS[version](handle)
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise SkeletonFormatError(path, None, f"{where}{PICKLE_REFUSAL}") from None
        raise SkeletonFormatError(path, None, f"{where}not a numpy array file ({exc})") from None


def _read_checked(handle: BinaryIO, path: Path, where: str, available: int, max_bytes: int) -> np.ndarray:
    """The array at ``handle`` whose header plus data must fit in ``available`` bytes from the stream start."""
    start = handle.tell()
    shape, fortran_order, dtype = _read_header(handle, path, where)
    if dtype.hasobject:
        raise SkeletonFormatError(path, None, f"{where}{PICKLE_REFUSAL}")
    count = int(np.prod(shape, dtype=object))
    num_bytes = count * dtype.itemsize
    if num_bytes > max_bytes:
        raise SkeletonFormatError(path, None, f"{where}declares a {shape} {dtype} array of {_size_text(num_bytes)}, "
                                              f"over the {_size_text(max_bytes)} limit for joint arrays; "
                                              "refused before reading it")
    held = available - (handle.tell() - start)
    if num_bytes > held:
        raise SkeletonFormatError(path, None, f"{where}declares a {shape} {dtype} array of {num_bytes} bytes but "
                                              f"holds only {max(held, 0)} bytes of data")
    data = handle.read(num_bytes)
    if len(data) != num_bytes:
        raise SkeletonFormatError(path, None, f"{where}is truncated: {len(data)} of {num_bytes} bytes of data")
    array = np.frombuffer(data, dtype=dtype, count=count)
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def _member_name(path: Path, archive: zipfile.ZipFile, preferred: str) -> str:
    """The archive member to read: the only one, or the one named ``preferred`` (``preferred.npy``)."""
    members = [info.filename for info in archive.infolist() if not info.is_dir()]
    names = [member[:-4] if member.endswith(".npy") else member for member in members]
    if len(members) == 1:
        return members[0]
    if preferred in names:
        return members[names.index(preferred)]
    shown = names if len(names) <= 10 else [*names[:10], f"... {len(names) - 10} more"]
    raise SkeletonFormatError(path, None, f"holds arrays {shown}: keep one array, or name the joints "
                                          f"{preferred!r}")


def read_array_file(path: str | os.PathLike, preferred: str = "joints",
                    max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """One array from a ``.npy`` file, or from an ``.npz`` (its only array, or the one named ``preferred``).

    The result is read-only and as stored (any shape and dtype but object). Raises `SkeletonFormatError`
    naming the file for: a file that is neither format, a pickle, an array over ``max_bytes`` bytes, a
    header that declares more data than the file holds, or a damaged zip. Memory used is at most the
    array's size (never more than ``max_bytes``) plus the file's header.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(_NPY_MAGIC))
            handle.seek(0)
            if start.startswith(_ZIP_MAGIC):
                with zipfile.ZipFile(handle) as archive:
                    member = _member_name(path, archive, preferred)
                    info = archive.getinfo(member)
                    with archive.open(info) as stream:
                        return _read_checked(stream, path, f"member {member!r}: ", info.file_size, max_bytes)
            return _read_checked(handle, path, "", os.fstat(handle.fileno()).st_size, max_bytes)
    except SkeletonFormatError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise SkeletonFormatError(path, None, f"not a readable numpy file ({exc})") from None
