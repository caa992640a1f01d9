"""The NTU ``.skeleton`` reader and writer, and ``.npy``/``.npz`` joint arrays."""

import numpy as np
import pytest

from llavidal_pose.skeleton import (BODY_INFO_FIELDS, SkeletonFormatError, SkeletonSequence, load_joint_array,
                                    load_skeleton, read_skeleton_file, write_skeleton_file)

INFO_LINE = "72057594037931101 0 1 1 1 1 0 0.02764709 0.05745083 2"
JOINT_LINE = ("0.2181153 0.1725972 3.785547 277.419 191.8218 1036.233 519.1677 -0.2059419 0.05349901 0.9692109 "
              "-0.1239193 2")


def official_text(frames):
    """A file in the official layout, written field by field: ``frames`` lists, per frame, its bodies as
    (bodyID, x offset) pairs; joint j of a body is JOINT_LINE with x + offset + j/100 and tracking state 1 for
    odd joints."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, offset in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2")
            lines.append("25")
            for joint in range(25):
                fields = JOINT_LINE.split()
                fields[0] = format(0.2181153 + offset + joint / 100, ".7g")
                fields[11] = str(1 if joint % 2 else 2)
                lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def test_reads_the_official_layout_field_by_field(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    bodies = [[(72057594037931101, 0.0)], [], [(72057594037931101, 1.0), (72057594037931999, 5.0)]]
    path.write_text(official_text(bodies))
    sequence = read_skeleton_file(path)
    assert sequence.joints.shape == (3, 2, 25, 3) and sequence.joints.dtype == np.float32
    assert sequence.body_ids == (72057594037931101, 72057594037931999)
    assert sequence.present.tolist() == [[True, False], [False, False], [True, True]]
    assert sequence.joints[0, 0, 0].tolist() == pytest.approx([0.2181153, 0.1725972, 3.785547])
    assert sequence.joints[2, 1, 3, 0] == pytest.approx(0.2181153 + 5.0 + 0.03)
    assert not sequence.joints[1].any() and not sequence.joints[0, 1].any()
    assert sequence.joint_extra[0, 0, 0].tolist() == pytest.approx(
        [277.419, 191.8218, 1036.233, 519.1677, -0.2059419, 0.05349901, 0.9692109, -0.1239193])
    assert sequence.joint_tracking[0, 0, :3].tolist() == [2, 1, 2] and not sequence.joint_tracking[1].any()
    assert sequence.body_info[2, 1].tolist() == pytest.approx([0, 1, 1, 1, 1, 0, 0.02764709, 0.05745083, 2])
    assert BODY_INFO_FIELDS[-1] == "tracking_state"


def test_writer_round_trips_two_bodies_and_empty_frames(tmp_path):
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(5, 2, 25, 3)).astype(np.float32)
    present = np.array([[False, False], [True, False], [True, True], [False, False], [False, True]])
    joints[~present] = 0
    tracking = np.where(present[..., None], rng.integers(1, 3, size=(5, 2, 25)), 0).astype(np.int8)
    original = SkeletonSequence.from_dense(joints, present, (72057594037931101, 72057594037931102), tracking)
    path = write_skeleton_file(tmp_path / "two.skeleton", original)
    lines = path.read_text().splitlines()
    assert lines[:3] == ["5", "0", "1"] and len(lines[3].split()) == 10 and lines[4] == "25"
    assert all(len(line.split()) == 12 for line in lines[5:30])
    again = read_skeleton_file(path)
    np.testing.assert_allclose(again.joints, joints, rtol=1e-6, atol=1e-7)
    assert again.present.tolist() == present.tolist() and again.body_ids == original.body_ids
    assert (again.joint_tracking == tracking).all()
    write_skeleton_file(tmp_path / "again.skeleton", again)
    assert (tmp_path / "again.skeleton").read_text() == path.read_text()


def test_zero_frame_and_all_empty_files_read(tmp_path):
    (tmp_path / "none.skeleton").write_text("0\n")
    assert read_skeleton_file(tmp_path / "none.skeleton").joints.shape == (0, 0, 25, 3)
    (tmp_path / "empty_frames.skeleton").write_text("3\n0\n0\n\n0\n")
    sequence = read_skeleton_file(tmp_path / "empty_frames.skeleton")
    assert sequence.joints.shape == (3, 0, 25, 3) and sequence.num_frames == 3


def _corrupt(text, line, new):
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


# Lines: 1 frame count; frame 1: 2 body count, 3 info, 4 joint count, 5-29 joints; frame 2: 30 body count,
# body 1: 31 info, 32 joint count, 33-57 joints; body 2: 58 info, 59 joint count, 60-84 joints.
GOOD = official_text([[(1, 0.0)], [(1, 0.1), (2, 3.0)]])
JOINT_FIELDS = JOINT_LINE.split()


@pytest.mark.parametrize("text, line, message", [
    ("", 1, "unexpected end of file: expected the frame count"),
    ("abc\n", 1, "expected the frame count, an integer; found 'abc'"),
    ("-1\n", 1, "the frame count is negative"),
    ("2 0\n", 1, "expected the frame count (1 field), found 2 fields"),
    (_corrupt(GOOD, 2, "1.5"), 2, "expected the body count of frame 1, an integer; found '1.5'"),
    (_corrupt(GOOD, 3, INFO_LINE.rsplit(" ", 1)[0]), 3,
     "info line of body 1 of frame 1 should have 10 fields, found 9"),
    (_corrupt(GOOD, 3, "x" + INFO_LINE[1:]), 3,
     "field 1 (bodyID) of the info line of body 1 of frame 1 should be an integer"),
    (_corrupt(GOOD, 3, INFO_LINE.replace(" 1 1 1 1 0 ", " 1 one 1 1 0 ")), 3,
     "field 3 of the info line of body 1 of frame 1 should be an integer, found 'one'"),
    (_corrupt(GOOD, 4, "24"), 4, "body 1 of frame 1 has 24 joints"),
    (_corrupt(GOOD, 7, " ".join(JOINT_FIELDS[:11])), 7,
     "the line of joint 3 of body 1 of frame 1 should have 12 fields, found 11"),
    (_corrupt(GOOD, 7, " ".join(JOINT_FIELDS + ["0"])), 7, "should have 12 fields, found 13"),
    (_corrupt(GOOD, 9, " ".join(["0.1", "0.2", "abc", *JOINT_FIELDS[3:]])), 9,
     "field 3 of the line of joint 5 of body 1 of frame 1 should be a number, found 'abc'"),
    (_corrupt(GOOD, 9, " ".join([*JOINT_FIELDS[:11], "2.5"])), 9,
     "field 12 of the line of joint 5 of body 1 of frame 1 should be an integer"),
    (_corrupt(GOOD, 9, " ".join(["nan", *JOINT_FIELDS[1:]])), 29, "body 1 of frame 1 has a non-finite joint value"),
    (_corrupt(GOOD, 9, " ".join(["1e39", *JOINT_FIELDS[1:]])), 29, "non-finite joint value (NaN, infinite or beyond "
                                                                    "float32's range)"),
    (_corrupt(GOOD, 9, " ".join([*JOINT_FIELDS[:11], "7"])), 9,
     "field 12 (trackingState) of the line of joint 5 of body 1 of frame 1 should be 0, 1 or 2, found 7"),
    (_corrupt(GOOD, 9, JOINT_LINE.replace("0.2181153", "0.218\u00e9")), 9, "not a text file (byte 0xc3 is not ASCII)"),
    ("\n".join(GOOD.splitlines()[:40]) + "\n", 41,
     "unexpected end of file: expected the line of joint 9 of body 1 of frame 2"),
    ("\n".join(GOOD.splitlines()[:57]) + "\n", 58,
     "unexpected end of file: expected the info line of body 2 of frame 2"),
    (GOOD + "\n5\n", 86, "unexpected content after the last of the 2 frames declared on line 1"),
    (_corrupt(GOOD, 58, INFO_LINE.replace("72057594037931101", "1")), 58, "body id 1 appears twice in frame 2"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.skeleton"
    path.write_text(text)
    with pytest.raises(SkeletonFormatError) as caught:
        read_skeleton_file(path)
    assert caught.value.line == line and caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


def test_a_binary_file_is_refused(tmp_path):
    path = tmp_path / "binary.skeleton"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(SkeletonFormatError, match=r"binary.skeleton:1: not a text file \(byte 0x89 is not ASCII\)"):
        load_skeleton(path)


def test_arrays_load_as_t_m_v_c(tmp_path):
    joints = np.random.default_rng(0).normal(size=(6, 2, 25, 3)).astype(np.float32)
    joints[2, 1] = 0
    np.save(tmp_path / "a.npy", joints)
    sequence = load_skeleton(tmp_path / "a.npy")
    np.testing.assert_array_equal(sequence.joints, joints)
    assert sequence.present[2].tolist() == [True, False] and sequence.joint_tracking[2, 1].max() == 0
    np.save(tmp_path / "single.npy", joints[:, 0].astype(np.float64))
    assert load_skeleton(tmp_path / "single.npy").joints.shape == (6, 1, 25, 3)
    np.savez(tmp_path / "one.npz", anything=joints)
    np.savez(tmp_path / "named.npz", joints=joints, labels=np.arange(3))
    for name in ("one.npz", "named.npz"):
        np.testing.assert_array_equal(load_skeleton(tmp_path / name).joints, joints)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "x.npy", np.array([{"skel_body0": 1}], dtype=object)), "pickled Python objects"),
    (lambda p: np.save(p / "x.npy", np.zeros((4, 2, 17, 3))), r"has shape \(4, 2, 17, 3\)"),
    (lambda p: np.save(p / "x.npy", np.full((4, 25, 3), np.nan)), "NaN or infinite"),
    (lambda p: np.save(p / "x.npy", np.full((4, 25, 3), 1e39)), "beyond float32's range"),
    (lambda p: np.save(p / "x.npy", np.array(["a", "b"])), "expected real numbers"),
    (lambda p: np.savez(p / "x.npz", a=np.zeros((4, 25, 3)), b=np.zeros(2)), r"holds arrays \['a', 'b'\]"),
    (lambda p: (p / "x.npy").write_bytes(b"not numpy"), "x.npy: not a numpy array file"),
])
def test_bad_arrays_name_the_file(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.glob("x.*"))
    with pytest.raises(SkeletonFormatError, match=message) as caught:
        load_joint_array(path)
    assert str(caught.value).startswith(str(path))


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(SkeletonFormatError, match="unknown skeleton file type '.mp4'"):
        load_skeleton(tmp_path / "clip.mp4")
    with pytest.raises(SkeletonFormatError, match="no such file"):
        load_skeleton(tmp_path / "gone.skeleton")
