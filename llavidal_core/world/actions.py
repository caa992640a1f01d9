"""The daily actions of the miniature ADL world, and the objects people hold while doing them.

Actions come in twins that only one cue tells apart: *drink from a cup* and *answer a phone* share one
motion (a hand raised to the head) and differ only by the object; *wave* and *clap* hold nothing and
differ only by the motion; so do *sit down* and *stand up*, which differ by the motion's direction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeldObject:
    """How an object looks and where it is held: a coloured box of ``size`` metres at a body point."""

    name: str
    colour: tuple[int, int, int]
    size: tuple[float, float]  # width, height in metres
    held_at: str  # "right_hand", "both_hands" or "right_foot"


@dataclass(frozen=True)
class WorldAction:
    name: str          # "drink from a cup"
    third_person: str  # "drinks from a cup"
    motion: str        # a `llavidal_pose.synthetic.MOTIONS` entry
    held_object: str | None
    twin: str | None   # the action only one cue tells apart from this one
    told_apart_by: str | None  # "pose" or "object": the cue that separates the twins


OBJECTS = {
    "cup": HeldObject("cup", (40, 110, 235), (0.09, 0.12), "right_hand"),
    "phone": HeldObject("phone", (30, 190, 90), (0.07, 0.15), "right_hand"),
    "book": HeldObject("book", (220, 50, 50), (0.26, 0.2), "both_hands"),
    "tablet": HeldObject("tablet", (235, 200, 40), (0.26, 0.2), "both_hands"),
    "ball": HeldObject("ball", (235, 120, 20), (0.22, 0.22), "right_foot"),
}

WORLD_ACTIONS = (
    WorldAction("drink from a cup", "drinks from a cup", "raising_hand_to_head", "cup", "answer a phone", "object"),
    WorldAction("answer a phone", "answers a phone", "raising_hand_to_head", "phone", "drink from a cup", "object"),
    WorldAction("read a book", "reads a book", "holding_in_front", "book", "use a tablet", "object"),
    WorldAction("use a tablet", "uses a tablet", "holding_in_front", "tablet", "read a book", "object"),
    WorldAction("wave", "waves", "waving", None, "clap", "pose"),
    WorldAction("clap", "claps", "clapping", None, "wave", "pose"),
    WorldAction("sit down", "sits down", "sitting_down", None, "stand up", "pose"),
    WorldAction("stand up", "stands up", "standing_up", None, "sit down", "pose"),
    WorldAction("kick a ball", "kicks a ball", "kicking", "ball", None, None),
    WorldAction("walk", "walks", "walking", None, None, None),
)
ACTIONS_BY_NAME = {action.name: action for action in WORLD_ACTIONS}
