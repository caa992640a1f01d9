"""Memory follows a skeleton file's real content: many body ids, zip bombs and lying headers stay small."""

import io
import json
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest

from llavidal_pose.array_files import MAX_ARRAY_BYTES
from llavidal_pose.skeleton import SkeletonFormatError, load_joint_array, load_skeleton

MiB = 2**20
PEAK_LIMIT_MB = 200

# Loads and preprocesses one file in a fresh process whose address space is capped (so a regression fails
# with MemoryError instead of taking the machine's memory), and reports the outcome and the peak RSS.
MEASURE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
from llavidal_pose.preprocess import preprocess_skeleton
from llavidal_pose.skeleton import load_skeleton
try:
    outcome = {"shape": list(preprocess_skeleton(load_skeleton(sys.argv[1])).shape)}
except BaseException as exc:
    outcome = {"error": f"{type(exc).__name__}: {exc}"}
with open("/proc/self/status") as status:  # VmHWM: this process's own peak (ru_maxrss counts the parent's)
    outcome["peak_mb"] = int(status.read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(outcome))
"""


def load_in_fresh_process(path):
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                            env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_one_new_body_id_per_frame(path, num_ids=1500):
    """A 1.8 MB ``.skeleton``: frame k holds one body with id base + k, so ``num_ids`` distinct ids."""
    joints = np.random.default_rng(0).normal(scale=0.3, size=(num_ids, 25, 3)) + [0.0, 0.0, 3.0]
    lines = [str(num_ids)]
    for k in range(num_ids):
        lines += ["1", f"{72057594037927936 + k} 0 1 1 1 1 0 0.02764709 0.05745083 2", "25"]
        lines += [f"{x:.7g} {y:.7g} {z:.7g} 0 0 0 0 0 0 0 0 2" for x, y, z in joints[k]]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_zip_bomb(path, zero_mib=2625):
    """An ``.npz`` of ~2.6 MB whose one member is a valid ``(T, 2, 25, 3)`` float64 array of zeros, ~2.75 GB.

    The deflate stream is one compressed MiB of zeros, byte-aligned by full flushes, repeated; the zip
    container is written by hand (as any zip tool lays it out) so that making it takes no compression time.
    """
    header = io.BytesIO()
    frames = zero_mib * MiB // (2 * 25 * 3 * 8)
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (frames, 2, 25, 3)})
    header = header.getvalue()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(MiB)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    stream = start + block * zero_mib + compressor.flush()
    crc = zlib.crc32(header)
    for _ in range(zero_mib):
        crc = zlib.crc32(zeros, crc)
    size, name = len(header) + zero_mib * MiB, b"joints.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    path.write_bytes(local + stream + central + end)
    return path


def test_1500_body_ids_in_a_small_skeleton_file_need_memory_of_its_size(tmp_path):
    path = write_one_new_body_id_per_frame(tmp_path / "S001C001P001R001A001.skeleton")
    assert 1.5 * MiB < path.stat().st_size < 2.5 * MiB
    assert load_skeleton(path).num_bodies == 1500
    outcome = load_in_fresh_process(path)
    assert outcome.get("shape") == [3, 64, 25, 2], outcome
    assert outcome["peak_mb"] < PEAK_LIMIT_MB, outcome


def test_a_zip_bomb_npz_is_refused_before_it_is_decompressed(tmp_path):
    path = write_zip_bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 3 * MiB
    with zipfile.ZipFile(path) as archive:  # a well-formed archive: the member really inflates to 2.75 GB
        assert archive.getinfo("joints.npy").file_size > 2.7e9
    outcome = load_in_fresh_process(path)
    refusal = (f"SkeletonFormatError: {path}: member 'joints.npy': declares a (2293760, 2, 25, 3) float64 array "
               "of 2.6 GiB, over the 256.0 MiB limit")
    assert outcome["error"].startswith(refusal), outcome
    assert outcome["peak_mb"] < PEAK_LIMIT_MB, outcome


def npy_bytes(array_header, data=b""):
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, array_header)
    return out.getvalue() + data


@pytest.mark.parametrize("shape, message", [
    ((10**9, 2, 25, 3), r"declares a \(1000000000, 2, 25, 3\) float32 array of 558.8 GiB, over the 256.0 MiB limit"),
    ((1000, 2, 25, 3), r"declares a \(1000, 2, 25, 3\) float32 array of 600000 bytes but holds only 1200 bytes"),
])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_array_headers_declaring_more_than_the_file_holds_are_refused_unread(tmp_path, shape, message, suffix):
    content = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": shape}, bytes(1200))
    path = tmp_path / f"lying{suffix}"
    if suffix == ".npy":
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("joints.npy", content)
    with pytest.raises(SkeletonFormatError, match=message) as caught:
        load_joint_array(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_the_array_size_limit_is_documented_and_adjustable(tmp_path):
    joints = np.ones((40, 2, 25, 3), dtype=np.float32)
    np.save(tmp_path / "a.npy", joints)
    np.savez_compressed(tmp_path / "a.npz", joints=joints)
    assert MAX_ARRAY_BYTES == 256 * MiB
    for name in ("a.npy", "a.npz"):
        np.testing.assert_array_equal(load_joint_array(tmp_path / name).joints, joints)
        with pytest.raises(SkeletonFormatError, match="array of 23.4 KiB, over the 10.0 KiB limit"):
            load_joint_array(tmp_path / name, max_bytes=10 * 2**10)


def test_fortran_order_and_big_endian_arrays_read_as_stored(tmp_path):
    joints = np.random.default_rng(0).normal(size=(5, 2, 25, 3))
    np.save(tmp_path / "f.npy", np.asfortranarray(joints).astype(">f8"))
    np.testing.assert_array_equal(load_joint_array(tmp_path / "f.npy").joints, joints.astype(np.float32))


def test_counts_beyond_the_end_of_a_skeleton_file_allocate_nothing(tmp_path):
    path = tmp_path / "counts.skeleton"
    path.write_text("1000000000000\n1000000000\n")
    started = time.perf_counter()
    with pytest.raises(SkeletonFormatError, match=r"counts.skeleton:3: unexpected end of file: expected the info "
                                                  "line of body 1 of frame 1"):
        load_skeleton(path)
    assert time.perf_counter() - started < 1.0
