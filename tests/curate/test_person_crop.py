"""`llavidal curate person-crop`: boxes computed by hand on a hand-made skeleton, the written video and
skeleton, failures reported and skipped, and a rerun that redoes nothing."""

import json
import os

import numpy as np
import pytest

from ntu_bodies import make_body
from llavidal_curate.person_crop import (adjust_keypoints, bounding_box, clamp_keypoints, frame_keypoints,
                                         run_person_crop)


def _square(x0, x1, y0, y1):
    """25 joints spread over [x0, x1] x [y0, y1], the corners included."""
    colour = np.zeros((25, 2), dtype=np.float32)
    colour[:, 0] = np.linspace(x0, x1, 25)
    colour[:, 1] = np.linspace(y1, y0, 25)
    return colour


def test_boxes_equal_hand_computed_values():
    from llavidal_pose.skeleton import SkeletonSequence

    # frame 0: body 1 alone; frame 1: nobody; frame 2: bodies 1 and 2
    body1 = make_body(1, [0, 2], np.stack([_square(50.7, 70.2, 40.3, 60.9), _square(20, 30, 30, 40)]))
    body2 = make_body(2, [2], _square(100, 140, 60, 100)[None])
    sequence = SkeletonSequence(3, (body1, body2))
    keypoints, slot_body = frame_keypoints(sequence)
    assert keypoints.shape == (3, 50, 2)
    assert slot_body.tolist() == [[0, -1], [-1, -1], [0, 1]]
    # a slot the frame lacks holds body slot 0's keypoints; an empty frame is all zeros
    np.testing.assert_array_equal(keypoints[0, 25:], keypoints[0, :25])
    assert not keypoints[1].any()
    keypoints = clamp_keypoints(keypoints, 160, 120)

    # frame 0: ints x 50..70, y 40..60 -> boundingRect x=50 w=21, y=40 h=21; centre (60, 50); box 85 -> 42
    assert bounding_box(keypoints[0], 64) == ((18, 8), (102, 92))
    # frame 1: all (0, 0) -> w = h = 1, centre (0, 0); box 65 -> 32
    assert bounding_box(keypoints[1], 64) == ((-32, -32), (32, 32))
    # frame 2: x 20..140 -> w=121, centre 80; y 30..100 -> h=71, centre 65; boxes 185 -> 92, 135 -> 67
    assert bounding_box(keypoints[2], 64) == ((-12, -2), (172, 132))
    adjusted = adjust_keypoints(keypoints[0], (18, 8), (102, 92), (224, 224))
    np.testing.assert_allclose(adjusted[0], [(50.7 - 18) * 224 / 84, (60.9 - 8) * 224 / 84], rtol=1e-5)


def test_clamp_interpolates_nan_over_the_flattened_array_and_clips():
    keypoints = np.array([[[10.0, 20.0], [np.nan, 40.0], [200.0, -5.0]]])
    out = clamp_keypoints(keypoints, 160, 120)
    # the NaN x of joint 1 lies between joint 0's y (20) and joint 1's y (40) in the flattened order
    assert out[0, 1, 0] == 30.0
    assert out[0, 2].tolist() == [160.0, 0.0]
    with pytest.raises(ValueError):
        clamp_keypoints(np.full((1, 2, 2), np.nan), 10, 10)


def test_command_writes_video_and_adjusted_skeleton_and_resumes(ntu_layout, tmp_path, caplog):
    import av
    from llavidal_pose.skeleton import read_skeleton_file

    videos, skeletons, write = ntu_layout
    write("S001C001P001R001A001", [make_body(7, [0, 1, 2], np.stack([_square(50.7, 70.2, 40.3, 60.9)] * 3))])
    write("S001C001P001R001A002", [make_body(7, [0, 1], np.stack([_square(10, 20, 10, 20)] * 2))])
    # a skeleton longer than its video: reported and skipped
    write("S001C001P001R001A003", [make_body(1, [0, 1, 2], np.stack([_square(10, 20, 10, 20)] * 3))],
          num_frames=3, video_frames=1)
    (videos / "S001C001P001R001A004_rgb.avi").write_bytes(b"no skeleton for this one")
    out = tmp_path / "out"
    assert run_person_crop(videos, skeletons, out) == 3
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [error["video_id"] for error in errors] == ["S001C001P001R001A003"]
    assert sorted(p.name for p in (out / "rgb").iterdir()) == ["S001C001P001R001A001_rgb.avi",
                                                              "S001C001P001R001A002_rgb.avi"]
    with av.open(str(out / "rgb" / "S001C001P001R001A001_rgb.avi")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("mpeg4", 224, 224)
        assert sum(1 for _ in container.decode(stream)) == 3
    cropped = read_skeleton_file(out / "skeletons" / "S001C001P001R001A001.skeleton")
    colour = cropped.joint_extra[0, 0, :, 2:4]
    np.testing.assert_allclose(colour[0], [(50.7 - 18) * 224 / 84, (60.9 - 8) * 224 / 84], rtol=1e-5)
    np.testing.assert_allclose(cropped.joints, read_skeleton_file(
        skeletons / "S001C001P001R001A001.skeleton").joints)

    stamp = (out / "rgb" / "S001C001P001R001A001_rgb.avi").stat().st_mtime_ns
    os.remove(out / "rgb" / "S001C001P001R001A002_rgb.avi")  # as if killed before this video
    assert run_person_crop(videos, skeletons, out) == 3
    assert (out / "rgb" / "S001C001P001R001A001_rgb.avi").stat().st_mtime_ns == stamp
    assert (out / "rgb" / "S001C001P001R001A002_rgb.avi").is_file()
    assert len((out / "errors.jsonl").read_text().splitlines()) == 1  # the same failure is logged once
    assert not [p for p in out.rglob("*.tmp")]
