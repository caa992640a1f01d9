"""The NTU RGB+D (Kinect v2) skeleton: 25 joints, their bones, their hop distances and eight body parts.

Indices are 0-based here; the dataset documentation numbers joints from 1. The bones are the 24 edges
every NTU skeleton model uses (ST-GCN, CTR-GCN, pyskl: ``graph/ntu_rgb_d.py``), child to parent. The
body parts partition the joints; the backbone uses them as its hyperedges and pools its output tokens
over them (see `llavidal_pose.backbone`).
"""

from __future__ import annotations

NUM_JOINTS = 25

JOINT_NAMES = (
    "spine_base", "spine_mid", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
    "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
)
JOINT = {name: index for index, name in enumerate(JOINT_NAMES)}

SPINE_BASE = JOINT["spine_base"]
SPINE_MID = JOINT["spine_mid"]
LEFT_SHOULDER = JOINT["left_shoulder"]
RIGHT_SHOULDER = JOINT["right_shoulder"]

_BONES_ONE_BASED = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8),
    (24, 25), (25, 12),
)
BONES = tuple((child - 1, parent - 1) for child, parent in _BONES_ONE_BASED)

BODY_PARTS = (
    ("torso", ("spine_base", "spine_mid", "spine_shoulder")),
    ("head", ("neck", "head")),
    ("left_arm", ("left_shoulder", "left_elbow")),
    ("left_hand", ("left_wrist", "left_hand", "left_hand_tip", "left_thumb")),
    ("right_arm", ("right_shoulder", "right_elbow")),
    ("right_hand", ("right_wrist", "right_hand", "right_hand_tip", "right_thumb")),
    ("left_leg", ("left_hip", "left_knee", "left_ankle", "left_foot")),
    ("right_leg", ("right_hip", "right_knee", "right_ankle", "right_foot")),
)
NUM_BODY_PARTS = len(BODY_PARTS)


def part_of_joint() -> list[int]:
    """For each joint, the index of the body part it belongs to."""
    parts = [-1] * NUM_JOINTS
    for part_index, (_, joints) in enumerate(BODY_PARTS):
        for name in joints:
            parts[JOINT[name]] = part_index
    return parts


def hop_distances() -> list[list[int]]:
    """``d[i][j]``: the number of bones on the path from joint ``i`` to joint ``j`` (breadth-first search)."""
    neighbours: list[set[int]] = [set() for _ in range(NUM_JOINTS)]
    for child, parent in BONES:
        neighbours[child].add(parent)
        neighbours[parent].add(child)
    distances = []
    for source in range(NUM_JOINTS):
        row = [-1] * NUM_JOINTS
        row[source] = 0
        frontier = [source]
        while frontier:
            following = []
            for joint in frontier:
                for neighbour in neighbours[joint]:
                    if row[neighbour] < 0:
                        row[neighbour] = row[joint] + 1
                        following.append(neighbour)
            frontier = following
        distances.append(row)
    return distances
