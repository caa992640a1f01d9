"""Synthetic NTU-layout skeletons of simple motions, for tests, demos and recipe checks.

`SYNTHETIC_ACTIONS` are four easily told apart actions (PoseCLIP's synthetic recipe); `MOTIONS` adds the
motions of the miniature ADL world (a hand raised to the head, holding something in front, kicking,
sitting down, standing up). `animate` moves one `Performer`; `synthesize_action` animates a 25-joint Kinect skeleton with simple forward kinematics (bone lengths, limb
directions over time, two-link leg inverse kinematics for squats) and places it in Kinect camera space
(metres; y up; the person faces the sensor from 2.5-3.5 m). Every recording varies: body size, speed,
amplitude, phase, waving hand, view angle, position, length (50-100 frames at 30 fps) and joint noise
(1 cm). Some recordings start with frames where no body was tracked, and some have a nearly still second
person in the background, as real recordings do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llavidal_pose.joints import JOINT, NUM_JOINTS
from llavidal_pose.skeleton import SkeletonSequence

SYNTHETIC_ACTIONS = ("waving", "squatting", "walking", "clapping")
FPS = 30.0
_BODY_ID_BASE = 72057594037927936


def _unit(x, y, z) -> np.ndarray:
    """Unit vectors ``(T, 3)`` from broadcastable components."""
    v = np.stack(np.broadcast_arrays(x, y, z), axis=-1).astype(np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class _Body:
    """One person's joints ``(T, 25, 3)`` in their own frame: x to their left, y up, z forward."""

    def __init__(self, num_frames: int, scale: float):
        self.s = scale
        self.t = np.arange(num_frames) / FPS
        self.joints = np.zeros((num_frames, NUM_JOINTS, 3))
        self.root = np.zeros((num_frames, 3))
        self.hip_height = 0.95 * scale

    def set(self, name: str, position) -> np.ndarray:
        self.joints[:, JOINT[name]] = position
        return self.joints[:, JOINT[name]]

    def trunk(self) -> None:
        s, h = self.s, self.hip_height
        for name, height in (("spine_base", 0.0), ("spine_mid", 0.25), ("spine_shoulder", 0.47),
                             ("neck", 0.53), ("head", 0.66)):
            self.set(name, [0.0, h + height * s, 0.02 * s if name == "head" else 0.0])
        for side, sign in (("left", 1.0), ("right", -1.0)):
            self.set(f"{side}_shoulder", [sign * 0.18 * s, h + 0.45 * s, 0.0])
            self.set(f"{side}_hip", [sign * 0.09 * s, h - 0.03 * s, 0.0])

    def arm(self, side: str, upper: np.ndarray, fore: np.ndarray) -> None:
        s = self.s
        shoulder = self.joints[:, JOINT[f"{side}_shoulder"]]
        elbow = self.set(f"{side}_elbow", shoulder + 0.28 * s * upper)
        wrist = self.set(f"{side}_wrist", elbow + 0.25 * s * fore)
        hand = self.set(f"{side}_hand", wrist + 0.08 * s * fore)
        self.set(f"{side}_hand_tip", hand + 0.07 * s * fore)
        self.set(f"{side}_thumb", wrist + 0.05 * s * _unit(*(fore + [0.0, 0.0, 0.6]).T))

    def leg(self, side: str, thigh: np.ndarray, shin: np.ndarray) -> None:
        s = self.s
        hip = self.joints[:, JOINT[f"{side}_hip"]]
        knee = self.set(f"{side}_knee", hip + 0.42 * s * thigh)
        ankle = self.set(f"{side}_ankle", knee + 0.42 * s * shin)
        self.set(f"{side}_foot", ankle + [0.0, -0.04 * s, 0.12 * s])

    def rest_arm(self, side: str, rng: np.random.Generator) -> None:
        sign = 1.0 if side == "left" else -1.0
        sway = 0.03 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * self.t + rng.uniform(0, 2 * np.pi))
        direction = _unit(sign * 0.12, -1.0, 0.03 + sway)
        self.arm(side, direction, direction)

    def rest_leg(self, side: str) -> None:
        sign = 1.0 if side == "left" else -1.0
        direction = _unit(sign * 0.02, -1.0, 0.0)
        self.leg(side, direction, direction)

    def placed(self) -> np.ndarray:
        return self.joints + self.root[:, None, :]


def _waving(body: _Body, rng: np.random.Generator) -> None:
    body.trunk()
    side = "left" if rng.random() < 0.3 else "right"
    sign = 1.0 if side == "left" else -1.0
    phase = 2 * np.pi * rng.uniform(1.5, 2.5) * body.t + rng.uniform(0, 2 * np.pi)
    angle = 0.1 * sign + rng.uniform(0.4, 0.6) * np.sin(phase)
    body.arm(side, _unit(sign * 0.8, rng.uniform(0.3, 0.6), 0.2), _unit(sign * np.sin(angle), np.cos(angle), 0.1))
    body.rest_arm("right" if side == "left" else "left", rng)
    body.rest_leg("left")
    body.rest_leg("right")


def _clapping(body: _Body, rng: np.random.Generator) -> None:
    body.trunk()
    phase = 2 * np.pi * rng.uniform(1.5, 2.5) * body.t + rng.uniform(0, 2 * np.pi)
    inward = 0.3 + rng.uniform(0.7, 1.0) * (1 + np.sin(phase)) / 2
    height = rng.uniform(0.2, 0.45)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        body.arm(side, _unit(sign * 0.25, -0.6, 0.75), _unit(-sign * inward, height, 0.8))
    body.rest_leg("left")
    body.rest_leg("right")


def _bent_legs(body: _Body) -> None:
    """Both legs bent so the feet stay on the floor under the (lowered) hips: two-link inverse kinematics."""
    s = body.s
    for side, sign in (("left", 1.0), ("right", -1.0)):
        hip = body.joints[:, JOINT[f"{side}_hip"]] + body.root
        ankle_height = 0.08 * s
        span = np.minimum(hip[:, 1] - ankle_height, 0.839 * s)
        forward = np.sqrt((0.42 * s) ** 2 - (span / 2) ** 2)
        knee = np.stack([hip[:, 0] + sign * 0.03 * s, hip[:, 1] - span / 2, hip[:, 2] + forward], axis=-1)
        ankle = np.stack([hip[:, 0], np.full_like(span, ankle_height), hip[:, 2]], axis=-1)
        body.leg(side, _unit(*(knee - hip).T), _unit(*(ankle - knee).T))


def _squatting(body: _Body, rng: np.random.Generator) -> None:
    s = body.s
    phase = 2 * np.pi * rng.uniform(0.4, 0.7) * body.t + rng.uniform(0, 2 * np.pi)
    drop = rng.uniform(0.3, 0.45) * s * (1 - np.cos(phase)) / 2
    body.trunk()
    body.root[:, 1] = -drop
    reach = drop / (0.45 * s)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        body.arm(side, _unit(sign * 0.1, -1.0 + 0.9 * reach, 1.2 * reach + 0.05),
                 _unit(sign * 0.05, -1.0 + reach, 1.5 * reach + 0.05))
    _bent_legs(body)


def _walking(body: _Body, rng: np.random.Generator) -> None:
    step = rng.uniform(0.8, 1.1)
    phase = 2 * np.pi * step * body.t + rng.uniform(0, 2 * np.pi)
    swing = rng.uniform(0.3, 0.45)
    body.trunk()
    body.root[:, 2] = rng.uniform(0.5, 0.9) * body.t
    body.root[:, 1] = 0.02 * body.s * np.cos(2 * phase)
    for side, sign, offset in (("left", 1.0, 0.0), ("right", -1.0, np.pi)):
        angle = swing * np.sin(phase + offset)
        bend = angle - 0.7 * np.maximum(0.0, np.sin(phase + offset + np.pi / 2))
        body.leg(side, _unit(sign * 0.02, -np.cos(angle), np.sin(angle)),
                 _unit(sign * 0.02, -np.cos(bend), np.sin(bend)))
        arm_angle = -0.8 * angle
        body.arm(side, _unit(sign * 0.1, -np.cos(arm_angle), np.sin(arm_angle)),
                 _unit(sign * 0.1, -np.cos(arm_angle + 0.3), np.sin(arm_angle + 0.3)))


def _standing(body: _Body, rng: np.random.Generator) -> None:
    body.trunk()
    for side in ("left", "right"):
        body.rest_arm(side, rng)
        body.rest_leg(side)


def _raising_hand_to_head(body: _Body, rng: np.random.Generator) -> None:
    """The right hand comes up beside the face and stays there (drinking, phoning: the same motion)."""
    body.trunk()
    rise = np.clip(body.t / rng.uniform(0.3, 0.6), 0.0, 1.0)[:, None]
    jitter = 0.05 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * body.t + rng.uniform(0, 2 * np.pi))
    down = _unit(-0.12, -1.0, 0.03)
    upper = _unit(-0.45, -0.55 + 0.1 * jitter, 0.45)
    fore = _unit(0.35, 1.0 + jitter, 0.25)
    body.arm("right", _unit(*((1 - rise) * down + rise * upper).T), _unit(*((1 - rise) * down + rise * fore).T))
    body.rest_arm("left", rng)
    body.rest_leg("left")
    body.rest_leg("right")


def _holding_in_front(body: _Body, rng: np.random.Generator) -> None:
    """Both forearms forward at chest height, nearly still (reading, using a tablet)."""
    body.trunk()
    sway = 0.04 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * body.t + rng.uniform(0, 2 * np.pi))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        body.arm(side, _unit(sign * 0.15, -1.0, 0.25), _unit(-sign * 0.25, 0.45 + sway, 1.0))
    body.rest_leg("left")
    body.rest_leg("right")


def _kicking(body: _Body, rng: np.random.Generator) -> None:
    """The right leg swings forward and back, again and again."""
    body.trunk()
    phase = 2 * np.pi * rng.uniform(0.8, 1.2) * body.t + rng.uniform(0, 2 * np.pi)
    swing = rng.uniform(0.7, 1.0) * np.maximum(0.0, np.sin(phase))
    body.leg("right", _unit(-0.02, -np.cos(swing), np.sin(swing)), _unit(-0.02, -np.cos(1.2 * swing), np.sin(1.2 * swing)))
    body.rest_leg("left")
    for side in ("left", "right"):
        body.rest_arm(side, rng)


def _sitting(body: _Body, rng: np.random.Generator, down: bool) -> None:
    """Going from standing to sitting (``down``) or back up, once, at a varied moment and speed."""
    s = body.s
    start, length = rng.uniform(0.1, 0.35), rng.uniform(0.3, 0.5)
    progress = np.clip((body.t / body.t[-1] - start) / length, 0.0, 1.0) if len(body.t) > 1 else np.zeros(1)
    seated = progress if down else 1.0 - progress
    drop = rng.uniform(0.38, 0.45) * s * (1 - np.cos(np.pi * seated)) / 2
    body.trunk()
    body.root[:, 1] = -drop
    for side in ("left", "right"):
        body.rest_arm(side, rng)
    _bent_legs(body)


def _sitting_down(body: _Body, rng: np.random.Generator) -> None:
    _sitting(body, rng, down=True)


def _standing_up(body: _Body, rng: np.random.Generator) -> None:
    _sitting(body, rng, down=False)


_ANIMATIONS = {
    "waving": _waving, "squatting": _squatting, "walking": _walking, "clapping": _clapping,
    "raising_hand_to_head": _raising_hand_to_head, "holding_in_front": _holding_in_front,
    "kicking": _kicking, "sitting_down": _sitting_down, "standing_up": _standing_up,
}
MOTIONS = tuple(_ANIMATIONS)


@dataclass(frozen=True)
class Performer:
    """Who performs and where the camera sees them from: body size, view angles and position (metres)."""

    scale: float
    yaw_degrees: float
    pitch_degrees: float
    x: float
    y: float
    distance: float

    @classmethod
    def random(cls, rng: np.random.Generator, distance_range=(2.5, 3.5)) -> "Performer":
        scale = rng.uniform(0.85, 1.15)
        distance = rng.uniform(*distance_range)
        return cls(scale, rng.uniform(-40, 40), rng.uniform(-5, 5), rng.uniform(-0.5, 0.5), rng.uniform(-1.1, -0.9),
                   distance)


def _to_camera(joints: np.ndarray, performer: Performer) -> np.ndarray:
    """Person frame → Kinect camera space: turned to face the sensor, yawed, pitched and placed."""
    yaw, pitch = np.radians(performer.yaw_degrees), np.radians(performer.pitch_degrees)
    facing = np.diag([-1.0, 1.0, -1.0])
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    offset = np.array([performer.x, performer.y, performer.distance])
    return joints @ (tilt @ turn @ facing).T + offset


def animate(motion: str, rng: np.random.Generator, num_frames: int, performer: Performer) -> np.ndarray:
    """Camera-space joints ``(T, 25, 3)`` of ``performer`` doing ``motion`` (one of `MOTIONS`), without noise."""
    if motion not in _ANIMATIONS:
        raise ValueError(f"unknown synthetic motion {motion!r}; choose from {', '.join(MOTIONS)}")
    actor = _Body(num_frames, performer.scale)
    _ANIMATIONS[motion](actor, rng)
    return _to_camera(actor.placed(), performer)


def synthesize_action(action: str, rng: np.random.Generator, num_frames: int | None = None) -> SkeletonSequence:
    """One recording of ``action`` (one of `MOTIONS`; `SYNTHETIC_ACTIONS` are the default four), varied by ``rng``."""
    if action not in _ANIMATIONS:
        raise ValueError(f"unknown synthetic action {action!r}; choose from {', '.join(MOTIONS)}")
    num_frames = num_frames or int(rng.integers(50, 101))
    bodies = [animate(action, rng, num_frames, Performer.random(rng))]
    if rng.random() < 0.3:
        bystander = _Body(num_frames, rng.uniform(0.85, 1.15))
        _standing(bystander, rng)
        bodies.append(_to_camera(bystander.placed(), Performer.random(rng, (3.6, 4.2))))
    joints = np.stack(bodies, axis=1)
    joints += rng.normal(0.0, 0.01, joints.shape)
    present = np.ones(joints.shape[:2], dtype=bool)
    if rng.random() < 0.2:
        untracked = int(rng.integers(1, 6))
        joints[:untracked] = 0.0
        present[:untracked] = False
    body_ids = tuple(_BODY_ID_BASE + int(rng.integers(1000, 9999)) * 10 + m for m in range(len(bodies)))
    tracking = np.repeat(np.where(present, 2, 0).astype(np.int8)[..., None], NUM_JOINTS, axis=-1)
    return SkeletonSequence.from_dense(joints.astype(np.float32), present, body_ids, tracking)


def synthetic_dataset(actions=SYNTHETIC_ACTIONS, per_action: int = 32,
                      seed: int = 0) -> tuple[list[SkeletonSequence], list[int]]:
    """``per_action`` recordings of each action, shuffled; returns the sequences and their action indices."""
    rng = np.random.default_rng(seed)
    labels = [index for index in range(len(actions)) for _ in range(per_action)]
    rng.shuffle(labels)
    return [synthesize_action(actions[label], rng) for label in labels], labels


def write_synthetic_recordings(directory, actions=SYNTHETIC_ACTIONS, per_action: int = 2, seed: int = 0) -> list:
    """Write ``per_action`` ``.skeleton`` files per action, named NTU-style (``S001C001P<nnn>R001A<aaa>``)."""
    from pathlib import Path

    from llavidal_pose.skeleton import write_skeleton_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for action_number, action in enumerate(actions, start=1):
        for performer in range(1, per_action + 1):
            path = directory / f"S001C001P{performer:03d}R001A{action_number:03d}.skeleton"
            paths.append(write_skeleton_file(path, synthesize_action(action, rng)))
    return paths
