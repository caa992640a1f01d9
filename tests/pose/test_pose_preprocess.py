"""Preprocessing: body choice, padding, centring, canonical view, resampling."""

import numpy as np
import pytest

from llavidal_pose.joints import JOINT, LEFT_SHOULDER, RIGHT_SHOULDER, SPINE_BASE, SPINE_MID
from llavidal_pose.preprocess import actor_arrays, preprocess_skeleton, sample_frame_indices, select_actors
from llavidal_pose.skeleton import SkeletonFormatError, SkeletonSequence
from llavidal_pose.synthetic import synthesize_action


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_the_most_active_bodies_come_first_and_missing_ones_are_zero():
    rng = np.random.default_rng(0)
    still = np.broadcast_to(rng.normal(size=(1, 25, 3)), (20, 25, 3))
    lively = still + rng.normal(scale=0.5, size=(20, 25, 3))
    mild = still + rng.normal(scale=0.05, size=(20, 25, 3))
    joints = np.stack([still, mild, lively], axis=1)
    sequence = SkeletonSequence.from_joints(joints)
    chosen = select_actors(sequence.bodies, 2)
    assert [actor.body_id for actor in chosen] == [2, 1]
    frames = np.arange(20)
    chosen_joints, chosen_present = actor_arrays(chosen, frames, 2)
    np.testing.assert_allclose(chosen_joints[:, 0], lively, rtol=1e-6)
    np.testing.assert_allclose(chosen_joints[:, 1], mild, rtol=1e-6)
    padded, padded_present = actor_arrays(select_actors(sequence.bodies[:1], 2), frames, 2)
    assert padded.shape == (20, 2, 25, 3) and not padded[:, 1].any() and not padded_present[:, 1].any()


def test_output_layout_centring_and_dropped_empty_frames():
    sequence = synthesize_action("waving", np.random.default_rng(1), num_frames=40)
    joints = np.concatenate([np.zeros((3, *sequence.joints.shape[1:]), np.float32), sequence.joints])
    present = np.concatenate([np.zeros((3, sequence.num_bodies), bool), sequence.present])
    with_gaps = SkeletonSequence.from_joints(joints)
    assert with_gaps.present.tolist() == present.tolist()
    x = preprocess_skeleton(with_gaps, num_frames=40, num_person=2, align=False)
    assert x.shape == (3, 40, 25, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, SPINE_MID, 0], 0, atol=1e-6)
    first_valid = sequence.joints[np.flatnonzero(sequence.present[:, 0])[0], 0]
    np.testing.assert_allclose(x[:, 0, JOINT["head"], 0], first_valid[JOINT["head"]] - first_valid[SPINE_MID], atol=1e-5)


def test_canonical_view_makes_features_independent_of_the_camera():
    rng = np.random.default_rng(2)
    sequence = synthesize_action("clapping", rng, num_frames=30)
    x = preprocess_skeleton(sequence, num_frames=30)
    first = x[:, 0, :, 0].T
    spine = first[SPINE_MID] - first[SPINE_BASE]
    shoulders = first[RIGHT_SHOULDER] - first[LEFT_SHOULDER]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1], atol=1e-6)
    assert shoulders[1] == pytest.approx(0, abs=1e-6) and shoulders[0] > 0  # in the xz-plane, pointing +x
    moved = sequence.joints @ random_rotation(rng).T + np.array([0.3, -0.2, 1.0])
    moved[~sequence.present] = 0
    x_moved = preprocess_skeleton(SkeletonSequence.from_joints(moved), num_frames=30)
    np.testing.assert_allclose(x_moved, x, atol=1e-4)


def test_frame_sampling_takes_segment_midpoints_or_random_points_of_segments():
    assert sample_frame_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert sample_frame_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        indices = sample_frame_indices(100, 10, rng)
        assert ((indices // 10) == np.arange(10)).all()


def test_a_recording_without_bodies_is_an_error():
    empty = SkeletonSequence.from_joints(np.zeros((5, 1, 25, 3)), source="nobody.npy")
    with pytest.raises(SkeletonFormatError, match="nobody.npy: no body in any of its 5 frames"):
        preprocess_skeleton(empty)
    no_columns = SkeletonSequence.from_joints(np.zeros((4, 0, 25, 3)), source="zero.skeleton")
    with pytest.raises(SkeletonFormatError, match="no body in any of its 4 frames"):
        preprocess_skeleton(no_columns)
