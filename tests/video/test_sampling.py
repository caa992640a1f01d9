"""Frame sampling: the original's segment midpoints exactly (numpy's half-to-even rounding), uniform, fps."""

import numpy as np
import pytest

from llavidal_video.sampling import (fps_indices, presentation_times, sample_frame_indices,
                                     segment_midpoint_indices, uniform_indices)


def original_get_seq_frames(total_num_frames, desired_num_frames):
    """Copied from the original save_spatio_temporal_clip_features.py."""
    seg_size = float(total_num_frames - 1) / desired_num_frames
    seq = []
    for i in range(desired_num_frames):
        start = int(np.round(seg_size * i))
        end = int(np.round(seg_size * (i + 1)))
        seq.append((start + end) // 2)
    return seq


@pytest.mark.parametrize("total", [1, 2, 3, 6, 50, 72, 99, 100, 101, 199, 201, 390, 1000, 4321])
@pytest.mark.parametrize("wanted", [1, 4, 8, 100])
def test_segment_midpoints_equal_the_original(total, wanted):
    assert segment_midpoint_indices(total, wanted) == original_get_seq_frames(total, min(total, wanted))


def test_rounding_is_half_to_even_as_numpy():
    # seg = 5/4: seg*2 = 2.5 rounds to 2 (half-up would give 3), so segment 1 is (1 + 2) // 2 = 1
    assert segment_midpoint_indices(6, 4) == [0, 1, 3, 4]
    assert [(round(1.25 * i + 1e-9) + round(1.25 * (i + 1) + 1e-9)) // 2 for i in range(4)] != [0, 1, 3, 4]


def test_short_videos_take_as_many_frames_as_they_have():
    # as the original: T = total frames; its midpoint rule then repeats one frame and skips another
    indices = segment_midpoint_indices(72, 100)
    assert indices == original_get_seq_frames(72, 72) and len(indices) == 72 and len(set(indices)) == 71
    assert uniform_indices(3, 100) == [0, 1, 2]


def test_uniform_spans_first_to_last():
    assert uniform_indices(101, 5) == [0, 25, 50, 75, 100]


def test_fps_sampling_steps_by_time_and_caps_the_count():
    assert fps_indices(np.arange(90) / 30.0, 2.0, 100) == list(range(0, 90, 15))
    capped = fps_indices(np.arange(3000) / 30.0, 10.0, 8)
    assert len(capped) == 8 and capped[0] == 0 and capped == sorted(capped)
    with pytest.raises(ValueError, match="frame rate"):
        sample_frame_indices(90, 10, "fps", video_fps=0.0, target_fps=1.0)


def test_fps_sampling_follows_variable_frame_times():
    """60 frames at 30 fps, then 60 at 3 fps: one pick per second of the 22 s, by time, not by index."""
    times = np.concatenate([np.arange(60) / 30, 2 + np.arange(60) / 3])
    picks = fps_indices(times, 1.0, 100)
    assert picks == [0, 30, *range(60, 120, 3)] and len(picks) == 22
    assert sum(times[i] < 2 for i in picks) == 2


def test_unusable_timestamps_fall_back_to_the_frame_rate():
    assert presentation_times([0.0, 0.0, 0.0], 3, 10.0).tolist() == [0.0, 0.1, 0.2]  # repeated
    assert presentation_times([0.0, 0.2, 0.1], 3, 10.0).tolist() == [0.0, 0.1, 0.2]  # out of order
    assert presentation_times([0.0, 0.1], 3, 10.0).tolist() == [0.0, 0.1, 0.2]  # one missing
    assert presentation_times([0.5, 0.6, 2.0], 3, 10.0).tolist() == [0.5, 0.6, 2.0]
    assert presentation_times(None, 3, 0.0) is None


def test_errors_and_dispatch():
    with pytest.raises(ValueError, match="0 frames"):
        segment_midpoint_indices(0, 100)
    with pytest.raises(ValueError, match="unknown frame sampling"):
        sample_frame_indices(10, 4, "random")
    assert sample_frame_indices(10, 8, "fps", video_fps=10, target_fps=5) == [0, 2, 4, 6, 8]
    assert sample_frame_indices(10, 4, "fps", video_fps=10, target_fps=5) == [0, 2, 6, 8]
