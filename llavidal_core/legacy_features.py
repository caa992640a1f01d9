"""The original code's pickled features: a reader that unpickles numpy arrays and nothing else, a writer,
and whole-folder import into and export from a `FeatureStore`.

LLAVIDAL / Video-ChatGPT store one numpy array per pickle: ``<id>.pkl`` (video, float16 (356, 1024)),
``<id>_pose.pkl`` (256, 216) and ``<id>_object.pkl`` (n, 8, 512). A pickle can run any code on load, so
the reader resolves only the few numpy globals an array needs and refuses every other one before it runs.
Nor may a pickle make numpy allocate memory its own bytes do not fill: every length the pickle claims is
checked against the file before the unpickler runs, ``_reconstruct`` may only start an empty array, and the
array's shape, dtype and data arrive in its state, where the data must be a byte string of exactly
shape x itemsize bytes, checked before the array is made (numpy's own ``_frombuffer`` route likewise). An
array that never receives its data, and one holding NaN or inf, are refused.

File names and ids: the original's folders are flat and its ids have no dot (it cut video names at the
first dot, `llavidal_core.video_ids.legacy_video_id`), so a file's id is its name without ``.pkl`` and the
cue's suffix. A store id with ``/`` (``P03/P03T01C05/clips/clip_1``) is exported into the same sub-folders
(``OUT/P03/P03T01C05/clips/clip_1.pkl``), which the original's loaders reach through the instruction file's
``video`` field; import reads sub-folders the same way back, so export then import keeps every id.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import pickle
import pickletools
from dataclasses import dataclass, field
from pathlib import Path

import numpy
import torch
from tqdm import tqdm

from llavidal_core.errors import FeatureStoreError, LlavidalError, UnsafePickleError
from llavidal_core.extraction import has_cue
from llavidal_core.features import FeatureStore, atomic_write_bytes
from llavidal_core.finite import NonFiniteError
from llavidal_core.video_ids import check_video_id

LEGACY_SUFFIXES = {"video": "", "pose": "_pose", "object": "_object"}
LEGACY_EXTENSION = ".pkl"
LEGACY_PICKLE_PROTOCOL = 4
LAYOUT_BY_NDIM = {2: "tokens,dim", 3: "items,tokens_per_item,dim"}

# (module, name) a numpy pickle may name -> (numpy submodule, attribute). numpy 1 pickles say
# ``numpy.core``, numpy 2 pickles ``numpy._core``; both resolve to the installed numpy's objects.
_NUMPY_GLOBALS = {
    ("numpy", "dtype"): ("", "dtype"),
    **{(f"numpy.{core}.multiarray", "scalar"): ("multiarray", "scalar") for core in ("core", "_core")},
}
# ... and the array builders, which the unpickler replaces by checked versions of its own.
_NDARRAY = ("numpy", "ndarray")
_RECONSTRUCT = {(f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")}
_FROMBUFFER = {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}


def _resolve_numpy_global(submodule: str, name: str):
    if not submodule:
        return getattr(numpy, name)
    try:  # numpy 2 (importing its ``numpy.core`` alias would warn)
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


class _NdarrayType:
    """What the global ``numpy.ndarray`` resolves to: a token ``_reconstruct`` accepts, never callable (calling
    ``ndarray(shape, dtype)`` would allocate memory the pickle does not fill)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(f"{self.path}: refused to call 'numpy.ndarray' directly; an array's data must "
                                "come from the file")


class _ArrayUnderConstruction:
    """What ``_reconstruct`` gives: no array yet. The pickle's BUILD hands it the array's state (shape, dtype,
    data), checked by `_array_from_bytes` before anything is allocated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.array: numpy.ndarray | None = None

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise FeatureStoreError(f"{self.path}: an array's pickled state must be (version, shape, dtype, "
                                    f"is_fortran, data), got a {type(state).__name__}")
        shape, dtype, is_fortran, data = state[-4:]
        self.array = _array_from_bytes(self.path, data, dtype, shape, "F" if is_fortran else "C")


def _array_from_bytes(path: Path, data, dtype, shape, order: str) -> numpy.ndarray:
    """A copy of the array ``data`` holds, after checking that it is exactly shape x itemsize bytes."""
    if not isinstance(dtype, numpy.dtype):
        raise FeatureStoreError(f"{path}: an array's dtype must be a numpy dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        raise UnsafePickleError(f"{path}: holds a numpy array of Python objects (dtype {dtype}), not numbers")
    if not isinstance(shape, tuple) or not all(type(size) is int and size >= 0 for size in shape):
        raise FeatureStoreError(f"{path}: an array's shape must be a tuple of sizes, got {shape!r:.80}")
    if not isinstance(data, (bytes, bytearray)):
        raise FeatureStoreError(f"{path}: an array's data must be a byte string in the file, got "
                                f"{type(data).__name__}")
    if order not in ("C", "F"):
        raise FeatureStoreError(f"{path}: an array's order must be 'C' or 'F', got {order!r:.20}")
    needed = math.prod(shape) * dtype.itemsize
    if len(data) != needed:
        raise FeatureStoreError(f"{path}: an array of shape {shape} and dtype {dtype} needs {needed} bytes of "
                                f"data; the pickle holds {len(data)}")
    if needed == 0:
        return numpy.empty(shape, dtype=dtype, order=order)
    return numpy.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy(order="K")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only numpy's array-building globals (the builders replaced by checked ones); any other global
    is refused before it is called."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return _resolve_numpy_global(*_NUMPY_GLOBALS[module, name])
        if (module, name) == _NDARRAY:
            return _NdarrayType(self.path)
        if (module, name) in _RECONSTRUCT:
            return self._reconstruct
        if (module, name) in _FROMBUFFER:
            return self._frombuffer
        if (module, name) == ("_codecs", "encode"):  # how protocols 0-2 write bytes
            return self._encode_latin1
        if (module, name) in {("builtins", "bytes"), ("__builtin__", "bytes")}:  # ... and empty bytes
            return self._empty_bytes
        raise UnsafePickleError(
            f"{self.path}: refused to load global '{module}.{name}'; a legacy feature pickle may hold "
            "only a numpy array"
        )

    def _reconstruct(self, subtype, shape, _dtype) -> _ArrayUnderConstruction:
        """numpy's ``_reconstruct(ndarray, (0,), b'b')``: starts an array and allocates nothing."""
        if not isinstance(subtype, _NdarrayType):
            raise UnsafePickleError(f"{self.path}: refused '_reconstruct' of {type(subtype).__name__}; only "
                                    "plain numpy arrays are read")
        if not isinstance(shape, tuple) or not all(type(size) is int for size in shape) or math.prod(shape) != 0:
            raise UnsafePickleError(f"{self.path}: refused '_reconstruct' with shape {shape!r:.80}: an array starts "
                                    "empty and gets its shape and data from the file")
        return _ArrayUnderConstruction(self.path)

    def _frombuffer(self, buffer, dtype, shape, order) -> numpy.ndarray:
        """numpy's ``_frombuffer`` (protocol 5 pickles), with the buffer's length checked first."""
        return _array_from_bytes(self.path, buffer, dtype, shape, order)

    def _encode_latin1(self, text: str, encoding: str) -> bytes:
        if not isinstance(text, str) or encoding != "latin1":
            raise UnsafePickleError(f"{self.path}: refused '_codecs.encode' with encoding {encoding!r}")
        return text.encode("latin1")

    @staticmethod
    def _empty_bytes() -> bytes:
        return b""


def read_legacy_features(path: str | os.PathLike, cue: str | None = None) -> numpy.ndarray:
    """The numpy array (any shape, the dtype it was pickled with) in one legacy ``.pkl`` file, unpickled
    without running anything but numpy's checked array builders (module docstring).

    Raises `UnsafePickleError` for a pickle that names anything else, `FeatureStoreError` for an unreadable
    one or one whose data does not fill its array, and `llavidal_core.finite.NonFiniteError` (naming the
    file and ``cue``) for an array holding NaN or inf.
    """
    path = Path(path)
    data = path.read_bytes()
    _check_pickle_framing(path, data)
    try:
        loaded = _NumpyOnlyUnpickler(io.BytesIO(data), path).load()
    except LlavidalError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle can fail in any way
        raise FeatureStoreError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, _ArrayUnderConstruction):
        if loaded.array is None:
            raise FeatureStoreError(f"{path}: holds an array whose data the pickle never gives")
        loaded = loaded.array
    if not isinstance(loaded, numpy.ndarray):
        raise FeatureStoreError(f"{path}: holds a {type(loaded).__name__}, not a numpy array")
    check_finite_array(loaded, f"{path} [{cue}]" if cue else str(path))
    return loaded


def check_finite_array(array: numpy.ndarray, what: str) -> None:
    """`llavidal_core.finite.check_finite` for a numpy array of any dtype (torch lacks some, e.g. float128)."""
    if array.dtype.kind not in "fc":
        return
    finite = numpy.isfinite(array)
    if not finite.all():
        raise NonFiniteError(f"{what}: {array.size - int(numpy.count_nonzero(finite))} of {array.size} values "
                             "are not finite (NaN or inf)")


def _check_pickle_framing(path: Path, data: bytes) -> None:
    """Walk the pickle's opcodes without running them, so a length it claims beyond the file's end is refused
    before the unpickler would allocate it."""
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception as exc:  # noqa: BLE001 - genops reports a broken stream in several ways
        raise FeatureStoreError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def write_legacy_features(path: str | os.PathLike, array: numpy.ndarray | torch.Tensor) -> None:
    """Pickle ``array`` to ``path`` as the original code did (protocol 4), atomically."""
    path = Path(path)
    if isinstance(array, torch.Tensor):
        if array.dtype == torch.bfloat16:
            raise FeatureStoreError(f"{path}: cannot write bfloat16 features as a legacy pickle (numpy has "
                                    "no bfloat16); convert them to float16 or float32 first")
        array = array.detach().cpu().numpy()
    if not isinstance(array, numpy.ndarray):
        raise FeatureStoreError(f"{path}: legacy features must be a numpy array or tensor, "
                                f"got {type(array).__name__}")
    if array.dtype.hasobject:
        raise FeatureStoreError(f"{path}: legacy features must be numbers, got an array of dtype {array.dtype}")
    check_finite_array(array, str(path))
    atomic_write_bytes(path, pickle.dumps(array, protocol=LEGACY_PICKLE_PROTOCOL))


def _legacy_suffix(cue: str) -> str:
    if cue not in LEGACY_SUFFIXES:
        raise FeatureStoreError(f"cue {cue!r} has no legacy .pkl layout; the original code stores only "
                                f"{', '.join(LEGACY_SUFFIXES)}")
    return LEGACY_SUFFIXES[cue]


def legacy_file_name(video_id: str, cue: str) -> str:
    """``nasa_13013`` -> ``nasa_13013.pkl`` (video), ``nasa_13013_pose.pkl``, ``nasa_13013_object.pkl``;
    ``P03/x/clip_1`` -> ``P03/x/clip_1.pkl`` (a path under the export folder)."""
    return f"{check_video_id(video_id)}{_legacy_suffix(cue)}{LEGACY_EXTENSION}"


def video_id_from_legacy_name(file_name: str, cue: str) -> str:
    """The video id in a legacy file name (or POSIX path under the folder): strip ``.pkl``, then the cue's suffix.

    For every file the original wrote this is `legacy_video_id` of its name (its ids have no dot); a dotted
    name is kept whole, so ids exported by `export_legacy_folder` read back as they were.
    """
    stem_and_suffix = file_name.removesuffix(LEGACY_EXTENSION)
    suffix = _legacy_suffix(cue)
    if stem_and_suffix == file_name or not stem_and_suffix.endswith(suffix):
        raise ValueError(f"{file_name!r} is not a legacy {cue} feature file name (<id>{suffix}{LEGACY_EXTENSION})")
    video_id = stem_and_suffix[: len(stem_and_suffix) - len(suffix)]
    if not video_id or video_id.endswith("/"):
        raise ValueError(f"{file_name!r} names no video id before {suffix}{LEGACY_EXTENSION}")
    try:
        return check_video_id(video_id)
    except ValueError as exc:
        raise ValueError(f"{file_name!r}: {exc}") from None


def legacy_files(source_dir: Path, cue: str) -> list[Path]:
    """The cue's ``.pkl`` files under ``source_dir`` (sub-folders included, hidden ones not), sorted. Video
    files have no suffix, so for the video cue files ending in another cue's suffix (``_pose.pkl``,
    ``_object.pkl``) are left out."""
    suffix = _legacy_suffix(cue)
    other_endings = tuple(f"{other}{LEGACY_EXTENSION}" for other in LEGACY_SUFFIXES.values()
                          if len(other) > len(suffix) and other.endswith(suffix))
    return sorted(
        path for path in source_dir.rglob(f"*{suffix}{LEGACY_EXTENSION}")
        if not any(part.startswith(".") for part in path.relative_to(source_dir).parts)
        and not path.name.endswith(other_endings) and path.is_file()
    )


@dataclass
class LegacyFolderReport:
    """What a folder import or export did: video ids written and skipped, and (file, error) for failures."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class ImportReport(LegacyFolderReport):
    """`import_legacy_folder`'s result; ``skipped`` are videos the store already had the cue for."""


class ExportReport(LegacyFolderReport):
    """`export_legacy_folder`'s result; ``skipped`` are videos whose ``.pkl`` already existed."""


_PER_FILE_ERRORS = (LlavidalError, OSError, ValueError)


def import_legacy_folder(source_dir: str | os.PathLike, store: FeatureStore, cue: str, *,
                         overwrite: bool = False) -> ImportReport:
    """Copy every legacy ``.pkl`` of ``cue`` under ``source_dir`` into ``store``, one file at a time (a file in a
    sub-folder keeps it in its id: ``P03/x/clip_1.pkl`` -> ``P03/x/clip_1``).

    Videos the store already holds the cue for are skipped unless ``overwrite``, so an interrupted import
    resumes where it stopped; a corrupt store file counts as not holding it and is replaced (with a warning).
    A file that cannot be read, or holds NaN or inf, is recorded in the report and the rest go on.
    Arrays keep their dtype and shape (object features stay (n, 8, 512)); metadata ``layout`` names the axes.
    """
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FeatureStoreError(f"{source_dir}: no such folder of legacy .pkl features")
    report = ImportReport()
    for path in tqdm(legacy_files(source_dir, cue), desc=f"import {cue} .pkl", unit="file", disable=None):
        try:
            name = path.relative_to(source_dir).as_posix()
            video_id = video_id_from_legacy_name(name, cue)
            if not overwrite and has_cue(store, video_id, cue):
                report.skipped.append(video_id)
                continue
            array = read_legacy_features(path, cue)
            if array.ndim not in LAYOUT_BY_NDIM:
                raise FeatureStoreError(f"{path}: holds a {array.ndim}-D array {array.shape}; legacy features "
                                        "are (tokens, dim) or (items, tokens_per_item, dim)")
            try:  # a native-byte-order, writable copy: torch refuses the others
                features = torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))
            except TypeError as exc:
                raise FeatureStoreError(f"{path}: holds dtype {array.dtype}, which torch cannot store") from exc
            store.write(video_id, cue, features, {"layout": LAYOUT_BY_NDIM[array.ndim], "imported_from": name},
                        replace_corrupt=True)
            report.written.append(video_id)
        except _PER_FILE_ERRORS as exc:
            report.failed.append((str(path), str(exc)))
    return report


def export_legacy_folder(store: FeatureStore, cue: str, target_dir: str | os.PathLike, *,
                         overwrite: bool = False) -> ExportReport:
    """Write every stored ``cue`` tensor as the original code's ``.pkl`` into ``target_dir`` (an id with ``/``
    into the same sub-folders, see the module docstring).

    Existing ``.pkl`` files are skipped unless ``overwrite``; a video that fails is recorded and the rest
    go on. Each array is written exactly as stored (an imported one comes back as it was imported).
    """
    target_dir = Path(target_dir)
    _legacy_suffix(cue)  # refuse a cue the old layout lacks before creating anything
    target_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    for video_id in tqdm(store.video_ids(), desc=f"export {cue} .pkl", unit="video", disable=None):
        try:
            if not store.has(video_id, cue):
                continue
            target = target_dir / legacy_file_name(video_id, cue)
            if not overwrite and target.exists():
                report.skipped.append(video_id)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            write_legacy_features(target, store.read(video_id, cue))
            report.written.append(video_id)
        except _PER_FILE_ERRORS as exc:
            report.failed.append((str(store.path_for(video_id)), str(exc)))
    return report
