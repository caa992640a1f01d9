"""Decoding: decord and PyAV behind one interface, AV1 through the fallback, every failure one clear error."""

import numpy as np
import pytest
import torch

from llavidal_core.errors import LlavidalError
from llavidal_core.testing.tiny_video import synthetic_video_frames, write_test_video
from llavidal_video.decoding import VideoDecodeError, decode_video
from llavidal_video.preprocessing import NearestResize
from llavidal_video.sampling import segment_midpoint_indices


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
    with pytest.raises(VideoDecodeError, match="short.mp4: cannot decode: pyav: .*no frames"):
        decode_video(clip_folder / "short.mp4", midpoints(4), decoder="pyav")


def test_decode_errors_survive_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError("/videos/a.mp4", "cannot decode: broken")))
    assert (error.path, error.reason, str(error)) == ("/videos/a.mp4", "cannot decode: broken",
                                                      "/videos/a.mp4: cannot decode: broken")
