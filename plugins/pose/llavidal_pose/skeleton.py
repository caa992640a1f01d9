"""Skeleton files: the NTU RGB+D ``.skeleton`` text format (reader and writer) and ``(T, M, V, C)`` arrays.

The text format, as the dataset's own ``read_skeleton_file.m`` reads it (one item per line)::

    <frame count>
    per frame:  <body count>                                  (may be 0)
      per body: <bodyID> <clipedEdges> <handLeftConfidence> <handLeftState> <handRightConfidence>
                <handRightState> <isResticted> <leanX> <leanY> <trackingState>        (10 fields)
                <joint count>                                                         (25)
                per joint: x y z depthX depthY colorX colorY orientationW orientationX orientationY
                           orientationZ trackingState                                 (12 fields)

x, y, z are Kinect v2 camera-space metres; depthX/Y are pixels of the 512x424 depth frame and colorX/Y
pixels of the 1920x1080 colour frame. Bodies are told apart by ``bodyID``: each distinct id becomes one
body column, in order of first appearance, and a frame where a body is missing (or a frame with no body
at all) holds zeros there. Blank lines are ignored. A file that does not follow the format raises
`SkeletonFormatError` naming the file and the line.

Arrays (``.npy``, or ``.npz`` with one array or an array named ``joints``) hold ``(T, M, V, C)`` camera-space
joints, or ``(T, V, C)`` for one body, with V = 25 and C = 3; an all-zero body in a frame means absent.
They are loaded without unpickling (the official ``txt2npy.py`` output is a pickled dict and is refused).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llavidal_core.errors import LlavidalError
from llavidal_pose.joints import NUM_JOINTS

SKELETON_SUFFIX = ".skeleton"
ARRAY_SUFFIXES = (".npy", ".npz")
SKELETON_FILE_SUFFIXES = (SKELETON_SUFFIX, *ARRAY_SUFFIXES)

BODY_INFO_FIELDS = (
    "clipped_edges", "hand_left_confidence", "hand_left_state", "hand_right_confidence", "hand_right_state",
    "is_restricted", "lean_x", "lean_y", "tracking_state",
)
JOINT_EXTRA_FIELDS = (
    "depth_x", "depth_y", "color_x", "color_y", "orientation_w", "orientation_x", "orientation_y", "orientation_z",
)
_INTEGER_BODY_FIELDS = {0, 1, 2, 3, 4, 5, 8}  # indices into BODY_INFO_FIELDS; lean_x, lean_y are floats

# Kinect v2 intrinsics (approximate), used to fill pixel coordinates when writing joints that have none.
_DEPTH_CAMERA = (365.0, 365.0, 256.0, 212.0)
_COLOR_CAMERA = (1081.0, 1081.0, 960.0, 540.0)


class SkeletonFormatError(LlavidalError, ValueError):
    """A skeleton file that cannot be read; the message starts with ``path:line:`` (or ``path:``)."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass
class SkeletonSequence:
    """The bodies of one recording.

    ``joints`` is ``(T, M, V, 3)`` float32 camera-space metres, zero where a body is absent; ``present``
    ``(T, M)`` says which bodies each frame holds; ``body_ids`` is the Kinect id of each body column;
    ``joint_tracking`` ``(T, M, V)`` is each joint's tracking state (0 not tracked, 1 inferred, 2 tracked).
    ``body_info`` ``(T, M, 9)`` (`BODY_INFO_FIELDS`) and ``joint_extra`` ``(T, M, V, 8)``
    (`JOINT_EXTRA_FIELDS`) hold the rest of the text format's fields, or None for sources without them.
    """

    joints: np.ndarray
    present: np.ndarray
    body_ids: tuple[int, ...]
    joint_tracking: np.ndarray
    body_info: np.ndarray | None = None
    joint_extra: np.ndarray | None = None
    source: str | None = None

    @property
    def num_frames(self) -> int:
        return self.joints.shape[0]

    @property
    def num_bodies(self) -> int:
        return self.joints.shape[1]

    @classmethod
    def from_joints(cls, joints: np.ndarray, source: str | None = None) -> "SkeletonSequence":
        """Wrap a ``(T, M, V, 3)`` array; a body whose joints are all zero in a frame is absent there."""
        joints = np.asarray(joints, dtype=np.float32)
        present = np.any(joints != 0, axis=(2, 3))
        tracking = np.repeat(np.where(present, 2, 0).astype(np.int8)[..., None], joints.shape[2], axis=-1)
        return cls(joints, present, tuple(range(joints.shape[1])), tracking, source=source)


# -- the text format ----------------------------------------------------------------------------------


class _Lines:
    """The non-blank lines of a file, one at a time, with their 1-based line numbers."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.index = 0

    def next(self, expected: str | Callable[[], str]) -> tuple[int, list[str]]:
        """The next non-blank line's number and fields; ``expected`` (or what it returns) names it at EOF."""
        while self.index < len(self.lines):
            self.index += 1
            fields = self.lines[self.index - 1].split()
            if fields:
                return self.index, fields
        expected = expected() if callable(expected) else expected
        raise SkeletonFormatError(self.path, len(self.lines) + 1, f"unexpected end of file: expected {expected}")

    def rest(self) -> int | None:
        """The line number of the first non-blank line left, or None."""
        for offset, line in enumerate(self.lines[self.index:]):
            if line.strip():
                return self.index + offset + 1
        return None


def _count(lines: _Lines, what: str) -> tuple[int, int]:
    number, fields = lines.next(what)
    if len(fields) != 1:
        raise SkeletonFormatError(lines.path, number, f"expected {what} (1 field), found {len(fields)} fields")
    try:
        value = int(fields[0])
    except ValueError:
        raise SkeletonFormatError(lines.path, number, f"expected {what}, an integer; found {fields[0]!r}") from None
    if value < 0:
        raise SkeletonFormatError(lines.path, number, f"{what} is negative ({value})")
    return number, value


def _numbers(lines: _Lines, number: int, fields: list[str], what: str, integers: set[int]) -> list[float]:
    values = []
    for position, field in enumerate(fields):
        try:
            values.append(int(field) if position in integers else float(field))
        except ValueError:
            kind = "an integer" if position in integers else "a number"
            raise SkeletonFormatError(
                lines.path, number, f"field {position + 1} of {what} should be {kind}, found {field!r}"
            ) from None
    return values


def _joint_block(lines: _Lines, where: str) -> np.ndarray:
    """The 25 joint lines of one body as a ``(25, 12)`` array (a fast path; errors are found line by line)."""
    block = []
    for joint in range(NUM_JOINTS):
        number, fields = lines.next(lambda joint=joint: f"the line of joint {joint + 1} of {where}")
        if len(fields) != 12:
            raise SkeletonFormatError(lines.path, number, f"the line of joint {joint + 1} of {where} should have "
                                                          f"12 fields, found {len(fields)}")
        block.append((number, fields))
    try:
        values = np.array([fields for _, fields in block], dtype=np.float64)
        if np.array_equal(values[:, 11], np.round(values[:, 11])):
            return values
    except ValueError:
        pass
    return np.array([_numbers(lines, number, fields, f"the line of joint {joint + 1} of {where}", {11})
                     for joint, (number, fields) in enumerate(block)], dtype=np.float64)


def read_skeleton_file(path: str | os.PathLike) -> SkeletonSequence:
    """Parse an NTU RGB+D ``.skeleton`` file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise SkeletonFormatError(path, None, f"not a text file ({exc.reason} at byte {exc.start})") from None
    lines = _Lines(path, text)
    _, frame_count = _count(lines, "the frame count")
    frames: list[list[tuple[int, list[float], np.ndarray]]] = []
    for frame in range(frame_count):
        _, body_count = _count(lines, f"the body count of frame {frame + 1}")
        bodies = []
        for body in range(body_count):
            where = f"body {body + 1} of frame {frame + 1}"
            number, fields = lines.next(f"the info line of {where}")
            if len(fields) != 10:
                raise SkeletonFormatError(path, number, f"the info line of {where} should have 10 fields, "
                                                        f"found {len(fields)}")
            try:
                body_id = int(fields[0])
            except ValueError:
                raise SkeletonFormatError(path, number, f"field 1 (bodyID) of the info line of {where} should be "
                                                        f"an integer, found {fields[0]!r}") from None
            if any(other_id == body_id for other_id, _, _ in bodies):
                raise SkeletonFormatError(path, number, f"body id {body_id} appears twice in frame {frame + 1}")
            info = _numbers(lines, number, fields[1:], f"the info line of {where}", _INTEGER_BODY_FIELDS)
            number, joint_count = _count(lines, f"the joint count of {where}")
            if joint_count != NUM_JOINTS:
                raise SkeletonFormatError(path, number, f"{where} has {joint_count} joints; NTU skeletons have "
                                                        f"{NUM_JOINTS}")
            joints = _joint_block(lines, where)
            number = lines.index
            if not np.isfinite(joints).all():
                raise SkeletonFormatError(path, number, f"{where} has a non-finite joint value")
            bodies.append((body_id, info, joints))
        frames.append(bodies)
    extra = lines.rest()
    if extra is not None:
        raise SkeletonFormatError(path, extra, f"unexpected content after the last of the {frame_count} frames "
                                               "declared on line 1")
    return _assemble(frames, str(path))


def _assemble(frames: list[list[tuple[int, list[float], np.ndarray]]], source: str) -> SkeletonSequence:
    body_ids: list[int] = []
    for bodies in frames:
        for body_id, _, _ in bodies:
            if body_id not in body_ids:
                body_ids.append(body_id)
    shape = (len(frames), len(body_ids))
    joints = np.zeros((*shape, NUM_JOINTS, 3), dtype=np.float32)
    extra = np.zeros((*shape, NUM_JOINTS, len(JOINT_EXTRA_FIELDS)), dtype=np.float32)
    tracking = np.zeros((*shape, NUM_JOINTS), dtype=np.int8)
    info = np.zeros((*shape, len(BODY_INFO_FIELDS)), dtype=np.float64)
    present = np.zeros(shape, dtype=bool)
    column = {body_id: index for index, body_id in enumerate(body_ids)}
    for t, bodies in enumerate(frames):
        for body_id, body_info, values in bodies:
            m = column[body_id]
            present[t, m] = True
            joints[t, m] = values[:, :3]
            extra[t, m] = values[:, 3:11]
            tracking[t, m] = values[:, 11]
            info[t, m] = body_info
    return SkeletonSequence(joints, present, tuple(body_ids), tracking, info, extra, source)


def _format(value: float) -> str:
    return format(float(value), ".7g")


def kinect_pixel_coordinates(joints: np.ndarray) -> np.ndarray:
    """Approximate ``(depthX, depthY, colorX, colorY)`` of camera-space joints ``(..., 3)`` (pinhole model)."""
    x, y, z = joints[..., 0], joints[..., 1], np.where(joints[..., 2] > 0, joints[..., 2], 1.0)
    columns = []
    for fx, fy, cx, cy in (_DEPTH_CAMERA, _COLOR_CAMERA):
        columns += [cx + fx * x / z, cy - fy * y / z]
    return np.stack(columns, axis=-1)


def write_skeleton_file(path: str | os.PathLike, sequence: SkeletonSequence) -> Path:
    """Write ``sequence`` in the ``.skeleton`` text format, field by field, as the Kinect toolbox does.

    Fields the sequence lacks are filled in: pixel coordinates by a pinhole projection, orientations as
    the identity quaternion, body info as zeros with tracking state 2.
    """
    path = Path(path)
    joints = np.asarray(sequence.joints, dtype=np.float64)
    if joints.ndim != 4 or joints.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, M, {NUM_JOINTS}, 3), got {joints.shape}")
    extra = sequence.joint_extra
    if extra is None:
        orientation = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), (*joints.shape[:3], 4))
        extra = np.concatenate([kinect_pixel_coordinates(joints), orientation], axis=-1)
    info = sequence.body_info
    if info is None:
        info = np.zeros((*joints.shape[:2], len(BODY_INFO_FIELDS)))
        info[..., BODY_INFO_FIELDS.index("tracking_state")] = 2
    out = [str(sequence.num_frames)]
    for t in range(sequence.num_frames):
        bodies = np.flatnonzero(sequence.present[t])
        out.append(str(len(bodies)))
        for m in bodies:
            fields = [str(int(sequence.body_ids[m]))]
            fields += [str(int(v)) if i in _INTEGER_BODY_FIELDS else _format(v) for i, v in enumerate(info[t, m])]
            out.append(" ".join(fields))
            out.append(str(NUM_JOINTS))
            for v in range(NUM_JOINTS):
                values = [*joints[t, m, v], *extra[t, m, v]]
                out.append(" ".join([*map(_format, values), str(int(sequence.joint_tracking[t, m, v]))]))
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


# -- arrays -------------------------------------------------------------------------------------------


def _has_array_magic(path: Path) -> bool:
    """Whether the file starts as a ``.npy`` or a zip (``.npz``) does."""
    with open(path, "rb") as handle:
        start = handle.read(6)
    return start == b"\x93NUMPY" or start.startswith(b"PK")


def load_joint_array(path: str | os.PathLike) -> SkeletonSequence:
    """Load ``(T, M, V, 3)`` or ``(T, V, 3)`` joints from ``.npy``/``.npz`` (never unpickling)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                if len(names) == 1:
                    name = names[0]
                elif "joints" in names:
                    name = "joints"
                else:
                    raise SkeletonFormatError(path, None, f"holds arrays {names}: keep one array, or name the "
                                                          "joints 'joints'")
                array = archive[name]
        else:
            array = np.load(path, allow_pickle=False)
    except SkeletonFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() and _has_array_magic(path):
            raise SkeletonFormatError(path, None, "holds pickled Python objects (the official txt2npy.py "
                                                  "writes a pickled dict), which are never loaded; read the "
                                                  ".skeleton file instead, or save the joints as a plain "
                                                  "(T, M, V, 3) array") from None
        raise SkeletonFormatError(path, None, f"not a numpy array file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SkeletonFormatError(path, None, f"not a readable numpy file ({exc})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise SkeletonFormatError(path, None, f"holds {array.dtype} values, expected real numbers")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[2:] != (NUM_JOINTS, 3):
        raise SkeletonFormatError(path, None, f"has shape {array.shape}; expected (T, M, {NUM_JOINTS}, 3) "
                                              f"or (T, {NUM_JOINTS}, 3)")
    if not np.isfinite(array).all():
        raise SkeletonFormatError(path, None, "holds NaN or infinite values")
    return SkeletonSequence.from_joints(array, source=str(path))


def load_skeleton(path: str | os.PathLike) -> SkeletonSequence:
    """Read a ``.skeleton`` text file or a ``.npy``/``.npz`` joint array, by suffix."""
    path = Path(path)
    if not path.is_file():
        raise SkeletonFormatError(path, None, "no such file")
    if path.suffix == SKELETON_SUFFIX:
        return read_skeleton_file(path)
    if path.suffix in ARRAY_SUFFIXES:
        return load_joint_array(path)
    raise SkeletonFormatError(path, None, f"unknown skeleton file type {path.suffix!r}; expected one of "
                                          f"{', '.join(SKELETON_FILE_SUFFIXES)}")
