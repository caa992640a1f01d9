"""Hostile and broken legacy .pkl files: arrays whose data is not in the file, lengths beyond the file's end,
NaN and inf features, and corrupt files met by a folder import."""

import pickle
import struct
import tracemalloc

import numpy as np
import pytest
import torch

from llavidal_core.errors import FeatureStoreError, LlavidalError, UnsafePickleError
from llavidal_core.features import FeatureStore
from llavidal_core.finite import NonFiniteError
from llavidal_core.legacy_features import import_legacy_folder, read_legacy_features, write_legacy_features

try:  # numpy 2 pickles name numpy._core, numpy 1 pickles numpy.core; the reader takes both
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

ONE_MB = 2**20


class Reconstruct:
    """Pickles as numpy's ``_reconstruct(ndarray, shape, dtype)``, optionally followed by a BUILD of ``state``."""

    def __init__(self, shape, dtype=b"f", state=None):
        self.shape, self.dtype, self.state = shape, dtype, state

    def __reduce__(self):
        if self.state is None:
            return _reconstruct, (np.ndarray, self.shape, self.dtype)
        return _reconstruct, (np.ndarray, self.shape, self.dtype), self.state


class CallsNdarray:
    """Pickles as ``numpy.ndarray(shape, dtype)``: an uninitialised array of any size, built by a plain call."""

    def __reduce__(self):
        return np.ndarray, ((10**8,), "f")


def written(tmp_path, name, obj, protocol=2):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def read_measuring_memory(path):
    """``read_legacy_features(path)``'s exception, and the peak memory Python and numpy allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(LlavidalError) as error:
            read_legacy_features(path)
        return error.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_74_byte_pickle_cannot_make_a_400_mb_array(tmp_path):
    path = written(tmp_path, "huge.pkl", Reconstruct((10**8,)), protocol=4)
    assert path.stat().st_size < 120

    error, peak = read_measuring_memory(path)

    assert isinstance(error, UnsafePickleError) and str(path) in str(error)
    assert "shape (100000000,)" in str(error)
    assert peak < ONE_MB


def test_an_array_without_data_is_not_uninitialised_memory(tmp_path):
    path = written(tmp_path, "small.pkl", Reconstruct((4,)))

    with pytest.raises(UnsafePickleError, match=r"small\.pkl: refused '_reconstruct' with shape \(4,\)"):
        read_legacy_features(path)


def test_an_empty_start_that_never_gets_its_data_is_refused(tmp_path):
    path = written(tmp_path, "nodata.pkl", Reconstruct((0,), b"b"))

    with pytest.raises(FeatureStoreError, match=r"nodata\.pkl: holds an array whose data the pickle never gives"):
        read_legacy_features(path)


@pytest.mark.parametrize("data", [b"", b"\x00" * 16, b"\x00" * 17])
def test_data_shorter_than_the_shape_is_refused_before_allocating(tmp_path, data):
    state = (1, (10**8,), np.dtype("float32"), False, data)
    path = written(tmp_path, "short.pkl", Reconstruct((0,), b"b", state))

    error, peak = read_measuring_memory(path)

    assert isinstance(error, FeatureStoreError)
    assert f"needs 400000000 bytes of data; the pickle holds {len(data)}" in str(error)
    assert peak < ONE_MB


def test_data_that_is_not_bytes_in_the_file_is_refused(tmp_path):
    state = (1, (2,), np.dtype("float32"), False, [1.0, 2.0])
    path = written(tmp_path, "listdata.pkl", Reconstruct((0,), b"b", state))

    with pytest.raises(FeatureStoreError, match="an array's data must be a byte string in the file, got list"):
        read_legacy_features(path)


def test_calling_ndarray_directly_is_refused(tmp_path):
    path = written(tmp_path, "call.pkl", CallsNdarray())

    error, peak = read_measuring_memory(path)

    assert isinstance(error, UnsafePickleError) and "refused to call 'numpy.ndarray' directly" in str(error)
    assert peak < ONE_MB


def test_protocol_5_buffers_must_hold_the_whole_array(tmp_path):
    good = np.arange(20000, dtype=np.float32).reshape(100, 200)  # large enough to be written outside a frame
    stream = pickle.dumps(good, protocol=5)
    data = good.tobytes()
    assert stream.count(data) == 1
    short = tmp_path / "short5.pkl"  # the same pickle with the buffer's length and bytes cut to 8
    start = stream.index(data)
    length_field = stream[start - 8:start]
    assert struct.unpack("<Q", length_field)[0] == len(data)
    short.write_bytes(stream[:start - 8] + struct.pack("<Q", 8) + data[:8] + stream[start + len(data):])

    with pytest.raises(FeatureStoreError, match=r"needs 80000 bytes of data; the pickle holds 8"):
        read_legacy_features(short)
    assert np.array_equal(read_legacy_features(written(tmp_path, "good5.pkl", good, protocol=5)), good)


def test_a_length_beyond_the_file_s_end_is_refused_before_allocating(tmp_path):
    path = tmp_path / "claims.pkl"  # BINBYTES8 claiming 400 MB, followed by 3 bytes
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 4 * 10**8) + b"abc.")

    error, peak = read_measuring_memory(path)

    assert isinstance(error, FeatureStoreError) and "not a readable pickle" in str(error)
    assert peak < ONE_MB


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_honest_arrays_still_read_back_exactly_and_writable(tmp_path, order, protocol):
    array = np.asarray(np.random.default_rng(1).standard_normal((5, 7)).astype(">f4"), order=order)
    read = read_legacy_features(written(tmp_path, "ok.pkl", array, protocol=protocol))
    assert read.dtype == array.dtype and np.array_equal(read, array) and read.flags.writeable
    assert read_legacy_features(written(tmp_path, "empty.pkl", np.zeros((0, 4), np.float16))).shape == (0, 4)


# -- NaN and inf --------------------------------------------------------------------------------------------------

def test_a_pickle_holding_nan_is_refused_naming_the_file_and_the_cue(tmp_path):
    array = np.ones((356, 1024), np.float16)
    array[0, 5] = np.nan
    array[9, 9] = np.inf
    path = written(tmp_path, "v1.pkl", array, protocol=4)

    with pytest.raises(NonFiniteError, match=r"v1\.pkl \[video\]: 2 of 364544 values are not finite"):
        read_legacy_features(path, "video")


def test_non_finite_features_are_never_written_as_a_pickle(tmp_path):
    with pytest.raises(NonFiniteError, match=r"v\.pkl: 1 of 4 values are not finite"):
        write_legacy_features(tmp_path / "v.pkl", torch.tensor([0.0, float("-inf"), 1.0, 2.0]))
    assert list(tmp_path.iterdir()) == []


def test_an_import_reports_the_nan_file_and_replaces_a_corrupt_store_file(tmp_path, caplog):
    folder = tmp_path / "legacy"
    folder.mkdir()
    write_legacy_features(folder / "a.pkl", np.ones((4, 3), np.float32))
    bad = np.ones((4, 3), np.float32)
    bad[1, 1] = np.nan
    written(folder, "b.pkl", bad, protocol=4)
    write_legacy_features(folder / "c.pkl", np.full((4, 3), 2, np.float32))
    store = FeatureStore(tmp_path / "store")
    store.path_for("c").write_bytes(b"the first half of a file")  # a copy that was cut short

    report = import_legacy_folder(folder, store, "video")

    assert report.written == ["a", "c"] and report.skipped == []
    assert [(path, "values are not finite" in error and "[video]" in error) for path, error in report.failed] == [
        (str(folder / "b.pkl"), True)]
    assert store.video_ids() == ["a", "c"] and float(store.read("c", "video")[0, 0]) == 2.0
    assert str(store.path_for("c")) in caplog.text
