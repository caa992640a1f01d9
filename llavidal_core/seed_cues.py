"""The cues of the original LLAVIDAL, as data: `VIDEO`, `OBJECT`, `POSE` and `LLAVIDAL_CUES`.

Token strings, feature widths and row counts are the seed's (reference/llavidal-facts.md §2.2-2.3): CLIP video
features (356, 1024), object features (8 per object, 512), PoseCLIP features (256, 216), each through one
``nn.Linear`` with bias. `LLAVIDAL_CUES` is in the seed's splice order (video, object, pose), which is also the
order its cue tokens were added to the vocabulary. The cue plugins register these specs; importing this module
costs nothing (no torch).
"""

from llavidal_core.cues import CueSpec

VIDEO = CueSpec(
    name="video",
    placeholder="<video>",
    patch_token="<vid_patch>",
    start_token="<vid_start>",
    end_token="<vid_end>",
    feature_dim=1024,
    num_tokens=356,
    distribution="llavidal-video",
    description="CLIP ViT-L/14 features of 100 frames: 100 per-frame means + 256 per-patch time means",
)

OBJECT = CueSpec(
    name="object",
    placeholder="<object>",
    patch_token="<object_patch>",
    start_token="<object_start>",
    end_token="<object_end>",
    feature_dim=512,
    tokens_per_item=8,
    distribution="llavidal-object",
    description="8 region-feature rows per tracked object",
)

POSE = CueSpec(
    name="pose",
    placeholder="<human_pose>",
    patch_token="<pose_patch>",
    start_token="<pose_start>",
    end_token="<pose_end>",
    feature_dim=216,
    num_tokens=256,
    distribution="llavidal-pose",
    description="PoseCLIP skeleton features",
)

LLAVIDAL_CUES = (VIDEO, OBJECT, POSE)
