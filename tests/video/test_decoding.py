"""Decoding: decord and PyAV behind one interface, AV1 through the fallback, every failure one clear error."""

import numpy as np
import pytest
import torch

from llavidal_core.errors import LlavidalError
from llavidal_video.testing.videos import synthetic_video_frames, write_test_video
from llavidal_video.decoding import VideoDecodeError, decode_video
from llavidal_video.encoder import FrameSelection
from llavidal_video.preprocessing import NearestResize
from llavidal_video.sampling import segment_midpoint_indices, uniform_indices


def midpoints(num_frames):
    return lambda total, fps: segment_midpoint_indices(total, num_frames)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_both_decoders_return_the_selected_frames(clip_folder, decoder):
    video = decode_video(clip_folder / "medium.mp4", midpoints(6), decoder=decoder, chunk_size=4)
    assert video.decoder == decoder and video.total_frames == 24 and video.fps == pytest.approx(10)
    assert video.indices == segment_midpoint_indices(24, 6)
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (6, 3, 48, 64)
    expected = torch.from_numpy(synthetic_video_frames(24, 48, 64, seed=2)[video.indices]).permute(0, 3, 1, 2)
    assert (video.frames.float() - expected.float()).abs().mean() < 8  # lossy H.264, same picture


def test_decord_and_pyav_agree_on_a_plain_clip(clip_folder):
    a = decode_video(clip_folder / "long.avi", midpoints(10), decoder="decord").frames
    b = decode_video(clip_folder / "long.avi", midpoints(10), decoder="pyav").frames
    assert (a.float() - b.float()).abs().mean() < 2


def test_av1_is_decoded_through_the_pyav_fallback(av1_clip):
    video = decode_video(av1_clip, midpoints(4), decoder="auto")
    assert video.decoder == "pyav" and video.total_frames == 12 and video.frames.shape == (4, 3, 48, 64)
    with pytest.raises(VideoDecodeError, match="av1_clip.mp4: cannot decode: decord"):
        decode_video(av1_clip, midpoints(4), decoder="decord")


def test_corrupted_file_fails_as_one_unit_naming_it(videos):
    with pytest.raises(VideoDecodeError) as caught:
        decode_video(videos / "corrupted.mp4", midpoints(100))
    error = caught.value
    assert isinstance(error, LlavidalError) and error.path.endswith("corrupted.mp4")
    assert "corrupted.mp4: cannot decode: decord:" in str(error) and "pyav:" in str(error)
    assert "/github/workspace" not in str(error)  # decord's log prefixes are dropped


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50])
def test_not_a_video(tmp_path, content):
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match="notes.mp4: cannot decode"):
        decode_video(path, midpoints(8))


def test_missing_file_and_bad_decoder(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        decode_video(tmp_path / "gone.mp4", midpoints(8))
    with pytest.raises(ValueError, match="unknown decoder"):
        decode_video(tmp_path / "gone.mp4", midpoints(8), decoder="opencv")


def test_decoders_disagree_on_nasa_frame_count(videos):
    by_decord = decode_video(videos / "nasa_13013.mp4", midpoints(4), decoder="decord")
    by_pyav = decode_video(videos / "nasa_13013.mp4", midpoints(4), decoder="pyav")
    assert (by_decord.total_frames, by_pyav.total_frames) == (390, 325)


def test_chunked_transform_keeps_memory_small_and_matches_whole_decode(videos):
    """1080p frames are squashed chunk by chunk; the result equals the original's one big float resize."""
    from decord import VideoReader, cpu

    video = decode_video(videos / "ntu_sample.avi", midpoints(100), decoder="decord",
                         transform=NearestResize(224), chunk_size=8)
    assert video.total_frames == 72 and video.frames.shape == (72, 3, 224, 224)
    reader = VideoReader(str(videos / "ntu_sample.avi"), ctx=cpu(0))
    whole = torch.from_numpy(reader.get_batch(video.indices[:20]).asnumpy()).permute(0, 3, 1, 2).float()
    original = torch.nn.functional.interpolate(whole, size=(224, 224)).to(torch.uint8)
    assert torch.equal(video.frames[:20], original)


def test_pyav_recounts_when_the_container_overcounts(tmp_path, monkeypatch):
    """If a stream ends before the frame count its container gave, indices are chosen again from the truth."""
    from llavidal_video import decoding

    path = write_test_video(tmp_path / "clip.mp4", num_frames=10)
    original_init = decoding.PyAVReader.__init__

    def overcounting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.num_frames += 5

    monkeypatch.setattr(decoding.PyAVReader, "__init__", overcounting_init)
    video = decode_video(path, midpoints(100), decoder="pyav")
    assert video.total_frames == 10 and video.indices == segment_midpoint_indices(10, 10)
    assert np.array_equal(video.frames.shape, (10, 3, 48, 64))


def test_a_file_without_a_video_stream(tmp_path):
    import av

    path = tmp_path / "sound_only.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024 * 4), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoDecodeError, match="sound_only.mp4: cannot decode: decord: .*; pyav: .*no video stream"):
        decode_video(path, midpoints(4))


def test_zero_frames_is_an_error(clip_folder, monkeypatch):
    from llavidal_video import decoding

    original_init = decoding.PyAVReader.__init__

    def empty(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.num_frames = 0

    monkeypatch.setattr(decoding.PyAVReader, "__init__", empty)
    with pytest.raises(VideoDecodeError, match="short.mp4: cannot decode: pyav: .*none of the 5 frames"):
        decode_video(clip_folder / "short.mp4", midpoints(4), decoder="pyav")


def test_decode_errors_survive_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError("/videos/a.mp4", "cannot decode: broken")))
    assert (error.path, error.reason, str(error)) == ("/videos/a.mp4", "cannot decode: broken",
                                                      "/videos/a.mp4: cannot decode: broken")


VFR_PICKS_AT_1_FPS = [0, 30, *range(60, 120, 3)]  # 22 s at 1 fps: frames at t = 0, 1, then every 3rd at 3 fps


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_fps_sampling_picks_by_presentation_time(variable_rate_clip, decoder):
    video = decode_video(variable_rate_clip, FrameSelection(100, "fps", 1.0), decoder=decoder)
    assert video.indices == VFR_PICKS_AT_1_FPS
    assert video.timestamps == pytest.approx([float(second) for second in range(22)], abs=1e-6)
    assert sum(second < 2 for second in video.timestamps) == 2
    assert video.frames.shape == (22, 3, 48, 64)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_index_based_sampling_is_unchanged_and_reports_real_times(variable_rate_clip, variable_rate_times,
                                                                   decoder):
    for mode, rule in (("segments", segment_midpoint_indices), ("uniform", uniform_indices)):
        video = decode_video(variable_rate_clip, FrameSelection(8, mode), decoder=decoder)
        assert video.indices == rule(120, 8)
        assert video.timestamps == pytest.approx([variable_rate_times[i] for i in video.indices], abs=1e-6)


DAMAGED = {  # clip → what the error must say
    "cut_inside_a_packet": "damaged stream: the decoder rejected its data after 109 of the 146 frames",
    "cut_after_30_packets": "only 30 of the 146 frames its header claims can be decoded",
    "corrupted.mp4": "damaged stream: the decoder rejected its data after 28 of the 50 frames",
}


def damaged_clip(request, name):
    return request.getfixturevalue("corrupted_video") if name == "corrupted.mp4" else \
        request.getfixturevalue("cut_clips")[name]


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_or_short_video_is_one_error_whatever_the_threads(request, name):
    path = damaged_clip(request, name)
    messages = set()
    for decoder in ("auto", "pyav"):
        for threads in (0, 1, 3):
            with pytest.raises(VideoDecodeError) as caught:
                decode_video(path, midpoints(100), decoder=decoder, num_threads=threads)
            assert str(caught.value).startswith(f"{path}: cannot decode: ")
            assert DAMAGED[name] in str(caught.value)
            messages.add((decoder, str(caught.value)))
    assert len(messages) == 2  # one message per decoder choice, the same for every thread count


def test_a_slightly_short_video_is_sampled_from_what_decodes(cut_clips, caplog):
    path = cut_clips["cut_after_110_packets"]
    results = []
    for decoder in ("decord", "pyav"):
        for threads in (0, 1, 3):
            caplog.clear()
            video = decode_video(path, midpoints(8), decoder=decoder, num_threads=threads)
            assert (video.total_frames, video.claimed_frames) == (110, 146)
            assert video.indices == segment_midpoint_indices(110, 8)
            assert "only 110 of the 146 frames its header claims can be decoded" in caplog.text
            results.append((decoder, video.frames))
    for decoder, frames in results:
        assert torch.equal(frames, next(f for d, f in results if d == decoder))
    whole = decode_video(cut_clips["whole"], lambda total, fps: segment_midpoint_indices(110, 8), decoder="pyav")
    assert whole.claimed_frames == whole.total_frames == 146
    assert torch.equal(results[-1][1], whole.frames)  # the frames that decode are the true frames
