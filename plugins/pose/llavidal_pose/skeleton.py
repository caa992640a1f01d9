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
`Body`, in order of first appearance, holding only the frames it appears in, so memory follows the file's
content (never bodies x frames). Blank lines are ignored. A file that does not follow the format raises
`SkeletonFormatError` naming the file and the line. The reader keeps every body id as the file has it;
joining the ids of one actor into one track is `llavidal_pose.actors`' job.

Arrays (``.npy``, or ``.npz`` with one array or an array named ``joints``) hold ``(T, M, V, C)`` camera-space
joints, or ``(T, V, C)`` for one body, with V = 25 and C = 3; an all-zero body in a frame means absent.
They are loaded without unpickling (the official ``txt2npy.py`` output is a pickled dict and is refused),
and their size is checked from the header before any data is read (`llavidal_pose.array_files`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from llavidal_pose.array_files import MAX_ARRAY_BYTES, read_array_file
from llavidal_pose.errors import SkeletonFormatError
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
JOINT_TRACKING_STATES = (0, 1, 2)  # not tracked, inferred, tracked
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# Kinect v2 intrinsics (approximate), used to fill pixel coordinates when writing joints that have none.
_DEPTH_CAMERA = (365.0, 365.0, 256.0, 212.0)
_COLOR_CAMERA = (1081.0, 1081.0, 960.0, 540.0)

__all__ = [
    "ARRAY_SUFFIXES", "BODY_INFO_FIELDS", "Body", "JOINT_EXTRA_FIELDS", "JOINT_TRACKING_STATES", "MAX_ARRAY_BYTES",
    "SKELETON_FILE_SUFFIXES", "SKELETON_SUFFIX", "SkeletonFormatError", "SkeletonSequence",
    "kinect_pixel_coordinates", "load_joint_array", "load_skeleton", "read_skeleton_file", "write_skeleton_file",
]


@dataclass(frozen=True, eq=False)
class Body:
    """One tracked body (one Kinect ``bodyID``) over the ``n`` frames it appears in.

    ``frames`` ``(n,)`` int64, increasing frame indices into the recording; ``joints`` ``(n, V, 3)`` float32
    camera-space metres; ``joint_tracking`` ``(n, V)`` int8 (0 not tracked, 1 inferred, 2 tracked);
    ``info`` ``(n, 9)`` float64 (`BODY_INFO_FIELDS`) and ``joint_extra`` ``(n, V, 8)`` float32
    (`JOINT_EXTRA_FIELDS`), or None for sources without them.
    """

    body_id: int
    frames: np.ndarray
    joints: np.ndarray
    joint_tracking: np.ndarray
    info: np.ndarray | None = None
    joint_extra: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frames)


@dataclass
class SkeletonSequence:
    """The bodies of one recording of ``num_frames`` frames, each stored over the frames it appears in.

    The dense views are built on each access and cost ``num_frames x num_bodies`` memory: ``joints``
    ``(T, M, V, 3)`` float32 camera-space metres, zero where a body is absent; ``present`` ``(T, M)``;
    ``body_ids`` the id of each body column; ``joint_tracking`` ``(T, M, V)``; ``body_info`` ``(T, M, 9)`` and
    ``joint_extra`` ``(T, M, V, 8)``, or None when a body lacks them.
    """

    num_frames: int
    bodies: tuple[Body, ...] = ()
    source: str | None = None

    @property
    def num_bodies(self) -> int:
        return len(self.bodies)

    @property
    def body_ids(self) -> tuple[int, ...]:
        return tuple(body.body_id for body in self.bodies)

    def occupied_frames(self) -> np.ndarray:
        """The increasing indices of the frames that hold at least one body, ``(n,)`` int64."""
        if not self.bodies:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([body.frames for body in self.bodies]))

    def _dense(self, field: str, tail: tuple[int, ...], dtype) -> np.ndarray:
        out = np.zeros((self.num_frames, self.num_bodies, *tail), dtype=dtype)
        for m, body in enumerate(self.bodies):
            out[body.frames, m] = getattr(body, field)
        return out

    @property
    def joints(self) -> np.ndarray:
        return self._dense("joints", (NUM_JOINTS, 3), np.float32)

    @property
    def present(self) -> np.ndarray:
        out = np.zeros((self.num_frames, self.num_bodies), dtype=bool)
        for m, body in enumerate(self.bodies):
            out[body.frames, m] = True
        return out

    @property
    def joint_tracking(self) -> np.ndarray:
        return self._dense("joint_tracking", (NUM_JOINTS,), np.int8)

    @property
    def body_info(self) -> np.ndarray | None:
        if any(body.info is None for body in self.bodies):
            return None
        return self._dense("info", (len(BODY_INFO_FIELDS),), np.float64)

    @property
    def joint_extra(self) -> np.ndarray | None:
        if any(body.joint_extra is None for body in self.bodies):
            return None
        return self._dense("joint_extra", (NUM_JOINTS, len(JOINT_EXTRA_FIELDS)), np.float32)

    @classmethod
    def from_dense(cls, joints: np.ndarray, present: np.ndarray, body_ids: tuple[int, ...],
                   joint_tracking: np.ndarray, body_info: np.ndarray | None = None,
                   joint_extra: np.ndarray | None = None, source: str | None = None) -> "SkeletonSequence":
        """From ``(T, M, ...)`` arrays laid out as the dense views are; body ``m`` keeps the frames where
        ``present[:, m]``."""
        bodies = []
        for m, body_id in enumerate(body_ids):
            frames = np.flatnonzero(present[:, m]).astype(np.int64)
            bodies.append(Body(
                int(body_id), frames, np.asarray(joints[frames, m], dtype=np.float32),
                np.asarray(joint_tracking[frames, m], dtype=np.int8),
                None if body_info is None else np.asarray(body_info[frames, m], dtype=np.float64),
                None if joint_extra is None else np.asarray(joint_extra[frames, m], dtype=np.float32)))
        return cls(int(joints.shape[0]), tuple(bodies), source)

    @classmethod
    def from_joints(cls, joints: np.ndarray, source: str | None = None) -> "SkeletonSequence":
        """Wrap a ``(T, M, V, 3)`` array; a body whose joints are all zero in a frame is absent there."""
        joints = np.asarray(joints, dtype=np.float32)
        present = np.any(joints != 0, axis=(2, 3))
        tracking = np.repeat(np.where(present, 2, 0).astype(np.int8)[..., None], joints.shape[2], axis=-1)
        return cls.from_dense(joints, present, tuple(range(joints.shape[1])), tracking, source=source)


# -- the text format ----------------------------------------------------------------------------------


class _Lines:
    """The non-blank lines of a binary file handle, read one at a time, with their 1-based line numbers."""

    def __init__(self, path: Path, handle: BinaryIO):
        self.path = path
        self.handle = handle
        self.index = 0

    def _decoded(self, raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SkeletonFormatError(self.path, self.index, f"not a text file (byte {raw[exc.start]:#04x} is "
                                                             "not ASCII)") from None

    def next(self, expected: str | Callable[[], str]) -> tuple[int, list[str]]:
        """The next non-blank line's number and fields; ``expected`` (or what it returns) names it at EOF."""
        for raw in self.handle:
            self.index += 1
            fields = self._decoded(raw).split()
            if fields:
                return self.index, fields
        expected = expected() if callable(expected) else expected
        raise SkeletonFormatError(self.path, self.index + 1, f"unexpected end of file: expected {expected}")

    def rest(self) -> int | None:
        """The line number of the first non-blank line left, or None."""
        for raw in self.handle:
            self.index += 1
            if raw.strip():
                return self.index
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
    except ValueError:
        values = None
    if values is None or not np.array_equal(values[:, 11], np.round(values[:, 11])):
        values = np.array([_numbers(lines, number, fields, f"the line of joint {joint + 1} of {where}", {11})
                           for joint, (number, fields) in enumerate(block)], dtype=np.float64)
    for joint, (number, _) in enumerate(block):
        if values[joint, 11] not in JOINT_TRACKING_STATES:
            raise SkeletonFormatError(lines.path, number, f"field 12 (trackingState) of the line of joint {joint + 1} "
                                                          f"of {where} should be 0, 1 or 2, found "
                                                          f"{int(values[joint, 11])}")
    return values


class _BodyRecord:
    """The frames of one body id seen so far in a ``.skeleton`` file (grows with the frames it appears in)."""

    def __init__(self, body_id: int):
        self.body_id = body_id
        self.frames: list[int] = []
        self.info: list[list[float]] = []
        self.values: list[np.ndarray] = []

    def add(self, frame: int, info: list[float], values: np.ndarray) -> None:
        """Record the body in ``frame``: its 9 info fields and its ``(25, 12)`` float32 joint lines."""
        self.frames.append(frame)
        self.info.append(info)
        self.values.append(values)

    def body(self) -> Body:
        values = np.stack(self.values)
        return Body(self.body_id, np.array(self.frames, dtype=np.int64), values[:, :, :3].copy(),
                    values[:, :, 11].astype(np.int8), np.array(self.info, dtype=np.float64),
                    values[:, :, 3:11].copy())


def read_skeleton_file(path: str | os.PathLike) -> SkeletonSequence:
    """Parse an NTU RGB+D ``.skeleton`` file (see the module docstring for the format).

    Memory grows with what the file holds (two to four times its size), never with the counts it declares: a
    frame or body count larger than the file's content ends in an "unexpected end of file" error.
    Raises `SkeletonFormatError` naming the file and line.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        return _parse(_Lines(path, handle))


def _parse(lines: _Lines) -> SkeletonSequence:
    path = lines.path
    _, frame_count = _count(lines, "the frame count")
    records: dict[int, _BodyRecord] = {}
    for frame in range(frame_count):
        _, body_count = _count(lines, f"the body count of frame {frame + 1}")
        in_frame: set[int] = set()
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
            if body_id in in_frame:
                raise SkeletonFormatError(path, number, f"body id {body_id} appears twice in frame {frame + 1}")
            in_frame.add(body_id)
            info = _numbers(lines, number, fields[1:], f"the info line of {where}", _INTEGER_BODY_FIELDS)
            number, joint_count = _count(lines, f"the joint count of {where}")
            if joint_count != NUM_JOINTS:
                raise SkeletonFormatError(path, number, f"{where} has {joint_count} joints; NTU skeletons have "
                                                        f"{NUM_JOINTS}")
            values = _joint_block(lines, where)
            if not (np.abs(values) <= _FLOAT32_MAX).all():  # NaN fails the comparison too
                raise SkeletonFormatError(path, lines.index, f"{where} has a non-finite joint value (NaN, infinite "
                                                             "or beyond float32's range)")
            if body_id not in records:
                records[body_id] = _BodyRecord(body_id)
            records[body_id].add(frame, info, values.astype(np.float32))
    extra = lines.rest()
    if extra is not None:
        raise SkeletonFormatError(path, extra, f"unexpected content after the last of the {frame_count} frames "
                                               "declared on line 1")
    return SkeletonSequence(frame_count, tuple(record.body() for record in records.values()), str(path))


def _format(value: float) -> str:
    return format(float(value), ".7g")


def kinect_pixel_coordinates(joints: np.ndarray) -> np.ndarray:
    """Approximate ``(depthX, depthY, colorX, colorY)`` of camera-space joints ``(..., 3)`` (pinhole model)."""
    x, y, z = joints[..., 0], joints[..., 1], np.where(joints[..., 2] > 0, joints[..., 2], 1.0)
    columns = []
    for fx, fy, cx, cy in (_DEPTH_CAMERA, _COLOR_CAMERA):
        columns += [cx + fx * x / z, cy - fy * y / z]
    return np.stack(columns, axis=-1)


def _filled_body(body: Body) -> tuple[np.ndarray, np.ndarray]:
    """A body's info ``(n, 9)`` and joint extras ``(n, V, 8)``, filled in where the body has none."""
    info = body.info
    if info is None:
        info = np.zeros((body.num_frames, len(BODY_INFO_FIELDS)))
        info[:, BODY_INFO_FIELDS.index("tracking_state")] = 2
    extra = body.joint_extra
    if extra is None:
        joints = np.asarray(body.joints, dtype=np.float64)
        orientation = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), (*joints.shape[:2], 4))
        extra = np.concatenate([kinect_pixel_coordinates(joints), orientation], axis=-1)
    return info, extra


def write_skeleton_file(path: str | os.PathLike, sequence: SkeletonSequence) -> Path:
    """Write ``sequence`` in the ``.skeleton`` text format, field by field, as the Kinect toolbox does.

    Within a frame, bodies come in the sequence's body order. Fields the sequence lacks are filled in:
    pixel coordinates by a pinhole projection, orientations as the identity quaternion, body info as
    zeros with tracking state 2.
    """
    path = Path(path)
    for body in sequence.bodies:
        if body.joints.shape != (body.num_frames, NUM_JOINTS, 3):
            raise ValueError(f"body {body.body_id}: joints must be (n, {NUM_JOINTS}, 3), got {body.joints.shape}")
    filled = [_filled_body(body) for body in sequence.bodies]
    per_frame: list[list[tuple[int, int]]] = [[] for _ in range(sequence.num_frames)]
    for m, body in enumerate(sequence.bodies):
        for row, frame in enumerate(body.frames.tolist()):
            per_frame[frame].append((m, row))
    out = [str(sequence.num_frames)]
    for bodies in per_frame:
        out.append(str(len(bodies)))
        for m, row in bodies:
            body = sequence.bodies[m]
            info, extra = filled[m]
            fields = [str(int(body.body_id))]
            fields += [str(int(v)) if i in _INTEGER_BODY_FIELDS else _format(v) for i, v in enumerate(info[row])]
            out.append(" ".join(fields))
            out.append(str(NUM_JOINTS))
            for v in range(NUM_JOINTS):
                values = [*np.asarray(body.joints[row, v], dtype=np.float64), *extra[row, v]]
                out.append(" ".join([*map(_format, values), str(int(body.joint_tracking[row, v]))]))
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


# -- arrays -------------------------------------------------------------------------------------------


def load_joint_array(path: str | os.PathLike, max_bytes: int = MAX_ARRAY_BYTES) -> SkeletonSequence:
    """Load ``(T, M, V, 3)`` or ``(T, V, 3)`` joints from ``.npy``/``.npz`` (never unpickling).

    The array's header is checked before its data is read: arrays over ``max_bytes`` bytes
    (`MAX_ARRAY_BYTES`, 256 MiB, by default) or declaring more data than the file holds are refused.
    Raises `SkeletonFormatError` naming the file.
    """
    path = Path(path)
    array = read_array_file(path, "joints", max_bytes)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise SkeletonFormatError(path, None, f"holds {array.dtype} values, expected real numbers")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[2:] != (NUM_JOINTS, 3):
        raise SkeletonFormatError(path, None, f"has shape {array.shape}; expected (T, M, {NUM_JOINTS}, 3) "
                                              f"or (T, {NUM_JOINTS}, 3)")
    if np.issubdtype(array.dtype, np.floating) and not (np.abs(array) <= _FLOAT32_MAX).all():
        raise SkeletonFormatError(path, None, "holds NaN or infinite values (or values beyond float32's range)")
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
