"""Rendering the miniature world: skeletons projected through a pinhole camera, drawn as stick figures
holding coloured objects, written as real video files with PyAV. Object boxes are recorded in pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llavidal_core.world.actions import OBJECTS

BACKGROUND = (34, 38, 46)
FIGURE = (225, 225, 215)
HEAD_RADIUS_METRES = 0.11


def joint_index(name: str) -> int:
    from llavidal_pose.joints import JOINT

    return JOINT[name]


def project(points: np.ndarray, image_size: int) -> np.ndarray:
    """Camera-space metres ``(..., 3)`` (x left, y up, z away) to pixels ``(..., 2)`` of a square image."""
    focal = image_size * 1.35
    centre = image_size / 2
    z = np.maximum(points[..., 2], 0.5)
    u = centre - focal * points[..., 0] / z
    v = centre * 0.95 - focal * points[..., 1] / z
    return np.stack([u, v], axis=-1)


def object_box(joints: np.ndarray, object_name: str, image_size: int) -> np.ndarray:
    """Pixel boxes ``(T, 4)`` (x0, y0, x1, y1) of the held object in every frame of ``joints`` ``(T, 25, 3)``."""
    held = OBJECTS[object_name]
    if held.held_at == "both_hands":
        anchor = (joints[:, joint_index("left_hand")] + joints[:, joint_index("right_hand")]) / 2
    elif held.held_at == "right_foot":
        anchor = joints[:, joint_index("right_foot")] + np.array([0.0, 0.11, 0.0])
    else:
        anchor = joints[:, joint_index("right_hand")]
    half = np.array([held.size[0] / 2, held.size[1] / 2, 0.0])
    corners = project(np.stack([anchor - half, anchor + half], axis=1), image_size)  # (T, 2, 2)
    x0, x1 = np.minimum(corners[:, 0, 0], corners[:, 1, 0]), np.maximum(corners[:, 0, 0], corners[:, 1, 0])
    y0, y1 = np.minimum(corners[:, 0, 1], corners[:, 1, 1]), np.maximum(corners[:, 0, 1], corners[:, 1, 1])
    return np.clip(np.stack([x0, y0, x1, y1], axis=-1), 0, image_size - 1)


def draw_frame(joints: np.ndarray, boxes: list[tuple[str, np.ndarray]], image_size: int) -> np.ndarray:
    """One uint8 frame ``(H, W, 3)``: the stick figure of ``joints`` ``(25, 3)`` and each ``(object, box)``."""
    from llavidal_pose.joints import BONES
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    points = project(joints, image_size)
    width = max(2, image_size // 48)
    for child, parent in BONES:
        draw.line([tuple(points[child]), tuple(points[parent])], fill=FIGURE, width=width)
    head = points[joint_index("head")]
    radius = image_size * 1.35 * HEAD_RADIUS_METRES / max(joints[joint_index("head"), 2], 0.5)
    draw.ellipse([head[0] - radius, head[1] - radius, head[0] + radius, head[1] + radius], outline=FIGURE,
                 width=width)
    for name, box in boxes:
        draw.rectangle([float(v) for v in box], fill=OBJECTS[name].colour)
    return np.asarray(image)


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> Path:
    """Encode uint8 frames ``(T, H, W, 3)`` as H.264 (yuv420p) into ``path``, written atomically.

    The same frames give the same bytes on every run (one encoder thread, no rate-control lookahead).
    """
    import av

    path = Path(path)
    temp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with av.open(str(temp), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            # x264's rate-control lookahead (macroblock tree) gave different bytes for the same frames from run
            # to run on flat synthetic images, even on one thread; without it the same frames give the same file
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "rc-lookahead=0"}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
