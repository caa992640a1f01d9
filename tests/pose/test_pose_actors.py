"""Actor tracks: a person whose Kinect body id changes mid-recording is one actor; people seen together are two."""

import logging

import numpy as np
import pytest
import torch

from llavidal_pose.actors import actor_tracks
from llavidal_pose.encoder import PoseCueEncoder
from llavidal_pose.preprocess import preprocess_skeleton
from llavidal_pose.skeleton import read_skeleton_file
from llavidal_pose.synthetic import synthesize_action

SMALL = dict(width=24, num_heads=2, depth=2, downsample_layers=[1, 2], num_frames=16, num_tokens=64, embed_dim=32)
FIRST_ID, SECOND_ID, THIRD_ID = 72057594037931101, 72057594037931388, 72057594037931512
OTHER_PERSON_ID = 72057594037931777


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """One intra-op thread (see the ``one_torch_thread`` fixture)."""


def person(action, seed, num_frames=64):
    """One person's camera-space joints ``(num_frames, 25, 3)`` doing ``action``."""
    return synthesize_action(action, np.random.default_rng(seed), num_frames=num_frames).joints[:, 0]


def skeleton_text(frames):
    """A ``.skeleton`` file in the official layout: ``frames`` lists, per frame, ``(bodyID, (25, 3) joints)``."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines += [f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2", "25"]
            lines += [f"{x:.7g} {y:.7g} {z:.7g} 277.419 191.8218 1036.233 519.1677 -0.2059419 0.05349901 "
                      f"0.9692109 -0.1239193 2" for x, y, z in joints]
    return "\r\n".join(lines) + "\r\n"


def ids_changing_at(changes, ids=(FIRST_ID, SECOND_ID, THIRD_ID)):
    """Per frame of 64, the body id the tracker gives: ``ids[k]`` from the k-th change on."""
    return [ids[sum(t >= change for change in changes)] for t in range(64)]


def write(path, frames):
    path.write_text(skeleton_text(frames))
    return path


@pytest.mark.parametrize("changes", [[40], [30, 34]], ids=["new-id-at-frame-40", "two-changes-short-middle-id"])
def test_a_new_body_id_mid_recording_is_the_same_actor(tmp_path, caplog, changes):
    waving = person("waving", 0)
    whole = write(tmp_path / "S001C001P001R001A023.skeleton", [[(FIRST_ID, waving[t])] for t in range(64)])
    ids = ids_changing_at(changes)
    split = write(tmp_path / "S001C001P001R001A024.skeleton", [[(ids[t], waving[t])] for t in range(64)])

    whole_sequence, split_sequence = read_skeleton_file(whole), read_skeleton_file(split)
    assert split_sequence.num_bodies == len(changes) + 1  # the reader keeps the file's ids as they are
    with caplog.at_level(logging.INFO, logger="llavidal_pose.actors"):
        split_tracks = actor_tracks(split_sequence)
    whole_tracks = actor_tracks(whole_sequence)
    assert split_tracks.body_ids == whole_tracks.body_ids == (FIRST_ID,)
    for view in ("joints", "present", "joint_tracking", "body_info", "joint_extra"):
        np.testing.assert_array_equal(getattr(split_tracks, view), getattr(whole_tracks, view), err_msg=view)
    assert f"{split}: body ids {FIRST_ID}, {SECOND_ID}" in caplog.text and "joined as one actor" in caplog.text

    np.testing.assert_array_equal(preprocess_skeleton(split_sequence), preprocess_skeleton(whole_sequence))
    torch.manual_seed(0)
    encoder = PoseCueEncoder(**SMALL).eval()
    split_features, whole_features = encoder.encode([split, whole])
    assert torch.equal(split_features, whole_features)


def test_an_id_change_beside_a_second_person_keeps_both_people_whole(tmp_path):
    waving, walking = person("waving", 1), person("walking", 2)
    reference = write(tmp_path / "reference.skeleton",
                      [[(FIRST_ID, waving[t]), (OTHER_PERSON_ID, walking[t])] for t in range(64)])
    ids = ids_changing_at([40])
    split = write(tmp_path / "split.skeleton", [[(ids[t], waving[t]), (OTHER_PERSON_ID, walking[t])]
                                                for t in range(64)])
    split_tracks = actor_tracks(read_skeleton_file(split))
    reference_tracks = actor_tracks(read_skeleton_file(reference))
    assert split_tracks.body_ids == reference_tracks.body_ids == (FIRST_ID, OTHER_PERSON_ID)
    np.testing.assert_array_equal(split_tracks.joints, reference_tracks.joints)
    np.testing.assert_array_equal(preprocess_skeleton(read_skeleton_file(split)),
                                  preprocess_skeleton(read_skeleton_file(reference)))


@pytest.mark.parametrize("second_frames", [range(20, 51), range(40, 64)], ids=["overlap-20-50", "one-shared-frame"])
def test_two_people_seen_at_the_same_time_stay_two(tmp_path, second_frames):
    waving, walking = person("waving", 3), person("walking", 4)
    first_frames = range(0, 41) if second_frames.start == 40 else range(64)
    frames = [[(FIRST_ID, waving[t])] * (t in first_frames) + [(SECOND_ID, walking[t])] * (t in second_frames)
              for t in range(64)]
    sequence = read_skeleton_file(write(tmp_path / "two.skeleton", frames))
    tracks = actor_tracks(sequence)
    assert tracks.body_ids == (FIRST_ID, SECOND_ID)
    np.testing.assert_array_equal(tracks.present, sequence.present)
    np.testing.assert_array_equal(tracks.joints, sequence.joints)
    shared = [t for t in second_frames if t in first_frames]
    x = preprocess_skeleton(sequence, num_frames=64)  # 64 occupied frames: frame t is time step t
    assert np.abs(x[:, shared]).sum(axis=(0, 2)).all()  # both people in every shared frame
