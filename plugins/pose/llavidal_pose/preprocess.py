"""From a `SkeletonSequence` to the backbone's input: a float32 ``(C=3, T, V=25, M)`` array.

The steps, in order (pyskl's ``PreNormalize3D`` + ``UniformSample`` + ``FormatGCNInput``, with CTR-GCN's
body choice):

1. drop the frames that hold no body;
2. join bodies that never overlap in time into actor tracks (`llavidal_pose.actors`: a person whose
   tracker id changed is one actor), then keep the ``num_person`` most active tracks (motion: the summed
   variance of a track's joints over the frames it appears in; ties go to the track seen in more frames),
   most active first, and pad with absent (all-zero) bodies up to ``num_person``;
3. ``center``: translate every present joint so that the spine-middle joint of the first body in its first
   frame is the origin;
4. ``align``: rotate into a canonical view taken from that same frame: the spine (spine base to spine
   middle) along +z and the shoulders (left to right) in the xz-plane along +x;
5. resample to ``num_frames`` frames by segment midpoints (a random point of each segment when an ``rng``
   is given, for training), repeating frames when the recording is shorter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llavidal_pose.actors import actor_tracks, body_motion
from llavidal_pose.joints import LEFT_SHOULDER, NUM_JOINTS, RIGHT_SHOULDER, SPINE_BASE, SPINE_MID
from llavidal_pose.skeleton import Body, SkeletonFormatError, SkeletonSequence


@dataclass(frozen=True)
class Preprocessing:
    """How skeletons are prepared for the backbone; saved with every encoder."""

    num_frames: int = 64
    num_person: int = 2
    center: bool = True
    align: bool = True

    def __call__(self, sequence: SkeletonSequence, rng: np.random.Generator | None = None) -> np.ndarray:
        return preprocess_skeleton(sequence, self.num_frames, self.num_person, center=self.center,
                                   align=self.align, rng=rng)


def select_actors(tracks: tuple[Body, ...], num_person: int) -> list[Body]:
    """The ``num_person`` most active tracks (`body_motion`), most active first; ties: more frames, then earlier."""
    ranked = sorted(enumerate(tracks), key=lambda item: (-body_motion(item[1]), -item[1].num_frames, item[0]))
    return [track for _, track in ranked[:num_person]]


def actor_arrays(actors: list[Body], frames: np.ndarray, num_person: int) -> tuple[np.ndarray, np.ndarray]:
    """``actors`` laid out over ``frames`` (increasing indices holding every actor frame): joints
    ``(len(frames), num_person, V, 3)`` float64, zero where absent, and ``present`` ``(len(frames), num_person)``."""
    joints = np.zeros((len(frames), num_person, NUM_JOINTS, 3), dtype=np.float64)
    present = np.zeros((len(frames), num_person), dtype=bool)
    for m, actor in enumerate(actors):
        rows = np.searchsorted(frames, actor.frames)
        joints[rows, m] = actor.joints
        present[rows, m] = True
    return joints, present


def canonical_rotation(frame: np.ndarray) -> np.ndarray | None:
    """The 3x3 rotation taking one body's frame ``(V, 3)`` to the canonical view; None if degenerate."""
    spine = frame[SPINE_MID] - frame[SPINE_BASE]
    shoulders = frame[RIGHT_SHOULDER] - frame[LEFT_SHOULDER]
    if np.linalg.norm(spine) < 1e-6:
        return None
    z_axis = spine / np.linalg.norm(spine)
    shoulders = shoulders - shoulders.dot(z_axis) * z_axis
    if np.linalg.norm(shoulders) < 1e-6:
        return None
    x_axis = shoulders / np.linalg.norm(shoulders)
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis])


def sample_frame_indices(num_available: int, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``num_frames`` indices into ``num_available`` frames: segment midpoints, or random points of segments."""
    offsets = np.full(num_frames, 0.5) if rng is None else rng.random(num_frames)
    indices = np.floor((np.arange(num_frames) + offsets) * num_available / num_frames).astype(np.int64)
    return np.clip(indices, 0, num_available - 1)


def preprocess_skeleton(sequence: SkeletonSequence, num_frames: int = 64, num_person: int = 2, *,
                        center: bool = True, align: bool = True,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """The backbone input ``(3, num_frames, V, num_person)`` for one recording (steps in the module doc)."""
    occupied = sequence.occupied_frames()
    if not len(occupied):
        raise SkeletonFormatError(sequence.source or "<skeleton>", None,
                                  f"no body in any of its {sequence.num_frames} frames")
    actors = select_actors(actor_tracks(sequence).bodies, num_person)
    joints, present = actor_arrays(actors, occupied, num_person)
    first = int(np.flatnonzero(present[:, 0])[0])
    mask = present[:, :, None, None]
    if center:
        joints = np.where(mask, joints - joints[first, 0, SPINE_MID], 0.0)
    if align:
        rotation = canonical_rotation(joints[first, 0])
        if rotation is not None:
            joints = np.where(mask, joints @ rotation.T, 0.0)
    joints = joints[sample_frame_indices(len(joints), num_frames, rng)]
    return np.ascontiguousarray(joints.transpose(3, 0, 2, 1), dtype=np.float32)
