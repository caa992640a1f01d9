"""Kinect bodies → actor tracks: one person whose tracker id changed is one track again.

The Kinect tracker may give the same person a new ``bodyID`` mid-recording (NTU RGB+D is full of this),
so one actor arrives as several bodies that follow one another in time. As the common NTU readers'
denoising does (the ST-GCN / CTR-GCN / pyskl pre-processing, ``get_raw_denoised_data.py``'s
``get_two_actors_points``), bodies are taken most active first and each joins a track whose time it
does not overlap. Here a body joins the first track none of whose bodies' frame ranges (first to last
frame, inclusive) meets its own, and otherwise starts a new track; comparing each body of the track
rather than the track's whole span (as CTR-GCN does) lets a short id between two others join too. Two
people seen in the same frame, even one, therefore stay two tracks. Activity ("motion") is the summed
variance of a body's joint coordinates over the frames it appears in.
"""

from __future__ import annotations

import bisect
import logging

import numpy as np

from llavidal_pose.skeleton import Body, SkeletonSequence

logger = logging.getLogger(__name__)


def body_motion(body: Body) -> float:
    """The summed variance of a body's ``(n, V, 3)`` joint coordinates over its ``n`` frames (m²); 0 if n < 2."""
    if body.num_frames < 2:
        return 0.0
    return float(np.asarray(body.joints, dtype=np.float64).reshape(body.num_frames, -1).var(axis=0).sum())


class _Track:
    """The bodies of one actor so far, with their disjoint frame ranges sorted by first frame."""

    def __init__(self) -> None:
        self.bodies: list[Body] = []
        self.firsts: list[int] = []
        self.lasts: list[int] = []

    def overlaps(self, first: int, last: int) -> bool:
        """Whether any body's range meets ``[first, last]`` (frame indices, inclusive)."""
        before = bisect.bisect_right(self.firsts, last) - 1
        return before >= 0 and self.lasts[before] >= first

    def add(self, body: Body) -> None:
        at = bisect.bisect_left(self.firsts, int(body.frames[0]))
        self.firsts.insert(at, int(body.frames[0]))
        self.lasts.insert(at, int(body.frames[-1]))
        self.bodies.insert(at, body)


def _optional_concat(parts: list[np.ndarray | None]) -> np.ndarray | None:
    return None if any(part is None for part in parts) else np.concatenate(parts)


def join_bodies(bodies: list[Body]) -> Body:
    """Bodies in order of time whose frame ranges do not overlap, as one `Body` with the first one's id."""
    if len(bodies) == 1:
        return bodies[0]
    return Body(bodies[0].body_id, np.concatenate([body.frames for body in bodies]),
                np.concatenate([body.joints for body in bodies]),
                np.concatenate([body.joint_tracking for body in bodies]),
                _optional_concat([body.info for body in bodies]),
                _optional_concat([body.joint_extra for body in bodies]))


def actor_tracks(sequence: SkeletonSequence) -> SkeletonSequence:
    """``sequence`` with its bodies joined into actor tracks (module docstring), in order of first frame.

    Bodies without frames are dropped. Each join is logged at INFO, naming the file and the body ids.
    """
    bodies = [body for body in sequence.bodies if body.num_frames]
    motion = {id(body): body_motion(body) for body in bodies}
    ranked = sorted(bodies, key=lambda body: (-motion[id(body)], -body.num_frames, body.frames[0]))
    tracks: list[_Track] = []
    for body in ranked:
        first, last = int(body.frames[0]), int(body.frames[-1])
        track = next((track for track in tracks if not track.overlaps(first, last)), None)
        if track is None:
            track = _Track()
            tracks.append(track)
        track.add(body)
    joined = []
    for track in tracks:
        if len(track.bodies) > 1:
            logger.info("%s: body ids %s never overlap in time; joined as one actor",
                        sequence.source or "<skeleton>", ", ".join(str(body.body_id) for body in track.bodies))
        joined.append(join_bodies(track.bodies))
    joined.sort(key=lambda body: body.frames[0])
    return SkeletonSequence(sequence.num_frames, tuple(joined), sequence.source)
