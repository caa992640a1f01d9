"""VideoCueEncoder: the tower cut at the layer, the spec, save/load, and parity with the original pipeline."""

import json

import numpy as np
import pytest
import torch

from llavidal_video.testing.videos import save_tiny_clip_vision
from llavidal_video.decoding import VideoDecodeError
from llavidal_video.encoder import VideoCueEncoder
from llavidal_video.towers import TransformersClipTower, resolve_layer
from llavidal_video.testing.original_pipeline import get_spatio_temporal_features
from llavidal_video.testing.videos import SHARED_DATA_VIDEOS


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_DATA_VIDEOS)
def test_reference_mode_equals_the_original_pipeline(tiny_clip_dir, videos, original_features, name):
    encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, preprocess="reference")
    ours = encoder.encode([videos / name])[0]
    original_float16, layer_features = original_features[name]
    original = torch.from_numpy(original_float16)
    assert ours.shape == original.shape == (356, 32) and ours.dtype == torch.float16
    assert (ours.float() - original.float()).abs().max() <= 1e-5
    if name == "ntu_sample.avi":  # 72 frames: rows 72..99 are the zero padding
        assert torch.equal(ours[72:100], torch.zeros(28, 32, dtype=torch.float16))

    # fast mode pools in float32: equal to the original's arithmetic without its float16 rounding, and within
    # that rounding (two float16 steps: features, then means; ~1e-3 relative) of the reference output
    fast = VideoCueEncoder.from_pretrained(tiny_clip_dir).encode([videos / name])[0]
    assert fast.dtype == torch.float32
    unrounded = torch.from_numpy(get_spatio_temporal_features(layer_features.numpy()))
    assert (fast - unrounded).abs().max() <= 1e-5
    assert torch.allclose(fast, original.float(), atol=1e-3, rtol=1e-3)


def test_tower_stops_at_the_layer_and_drops_cls(tiny_clip_dir):
    from transformers import CLIPVisionModel

    tower = TransformersClipTower.from_pretrained(str(tiny_clip_dir), layer=-2)
    assert len(tower.model.encoder.layers) == 2 and tower.source_layers == 3  # block 3 is never loaded
    full = CLIPVisionModel.from_pretrained(tiny_clip_dir).eval()
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        hidden = full(pixels, output_hidden_states=True).hidden_states
        assert torch.equal(tower(pixels), hidden[-2][:, 1:])
        assert torch.equal(TransformersClipTower.from_pretrained(str(tiny_clip_dir), layer=1)(pixels), hidden[1][:, 1:])
    assert resolve_layer(-1, 24) == 24 and resolve_layer(-2, 24) == 23 and resolve_layer(0, 3) == 0
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        resolve_layer(5, 3)


def test_spec_follows_the_options(tiny_clip_dir):
    default = VideoCueEncoder.from_pretrained(tiny_clip_dir)
    assert default.spec.name == "video" and default.spec.placeholder == "<video>"
    assert default.spec.patch_token == "<vid_patch>" and default.spec.start_token == "<vid_start>"
    assert (default.spec.num_tokens, default.spec.feature_dim) == (356, 32)
    assert VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, pool="none").spec.num_tokens == 8 * 256
    assert VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, pool="spatial",
                                           pool_stride=4).spec.num_tokens == 8 * 16
    with pytest.raises(ValueError, match="unknown pool"):
        VideoCueEncoder.from_pretrained(tiny_clip_dir, pool="max")
    with pytest.raises(ValueError, match="decodes with decord"):
        VideoCueEncoder.from_pretrained(tiny_clip_dir, preprocess="reference", decoder="pyav")


def test_encode_batches_and_other_poolings(tiny_clip_dir, clip_folder):
    paths = [clip_folder / "short.mp4", clip_folder / "medium.mp4"]
    encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, frame_batch_size=3)
    short, medium = encoder.encode(paths)
    assert short.shape == medium.shape == (8 + 256, 32)
    assert torch.equal(short[5:8], torch.zeros(3, 32))  # 5 frames: 3 padding rows
    none = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, pool="none").encode(paths[:1])[0]
    assert none.shape == (8 * 256, 32)
    patches = none[:5 * 256].reshape(5, 256, 32)
    assert torch.allclose(patches.mean(1), short[:5], atol=1e-5)  # the same frames, pooled differently
    spatial = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, pool="spatial").encode(paths[:1])[0]
    assert spatial.shape == (8 * 64, 32)


def test_dtype_and_decode_errors(tiny_clip_dir, clip_folder, tmp_path):
    encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=4, dtype="bfloat16")
    assert encoder.dtype == torch.bfloat16
    features = encoder.encode([clip_folder / "medium.mp4"])[0]
    reference = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=4).encode([clip_folder / "medium.mp4"])[0]
    assert features.dtype == torch.bfloat16 and (features.float() - reference).abs().max() < 0.1
    bad = tmp_path / "bad.mp4"
    bad.write_text("no video here")
    with pytest.raises(VideoDecodeError, match="bad.mp4"):
        encoder.encode([bad])


def test_save_pretrained_round_trip(tiny_clip_dir, clip_folder, tmp_path):
    encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=6, pool="spatial", pool_stride=4)
    encoder.save_pretrained(tmp_path / "saved")
    loaded = VideoCueEncoder.from_pretrained(tmp_path / "saved")
    assert (loaded.num_frames, loaded.pool, loaded.pool_stride) == (6, "spatial", 4)
    assert loaded.spec == encoder.spec and loaded.source == str(tiny_clip_dir)
    clip = [clip_folder / "medium.mp4"]
    assert torch.equal(loaded.encode(clip)[0], encoder.encode(clip)[0])


def test_loads_the_vision_half_of_a_full_clip_checkpoint(tmp_path, clip_folder):
    from transformers import CLIPConfig, CLIPModel

    vision = save_tiny_clip_vision(tmp_path / "vision-only", num_hidden_layers=2)
    config = CLIPConfig(vision_config=CLIPModel.config_class.sub_configs["vision_config"].from_pretrained(vision)
                        .to_dict(), text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37,
                                                     num_hidden_layers=1, num_attention_heads=4), projection_dim=8)
    torch.manual_seed(1)
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path / "clip")
    encoder = VideoCueEncoder.from_pretrained(tmp_path / "clip", num_frames=2)
    assert torch.equal(encoder.tower.model.embeddings.patch_embedding.weight,
                       full.vision_model.embeddings.patch_embedding.weight)
    assert encoder.encode([clip_folder / "short.mp4"])[0].shape == (2 + 256, 32)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """A tiny open_clip model config (ViT 224²/14, width 32, 3 blocks) registered under a test name."""
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("open-clip-config")
    (folder / "llavidal-tiny-vit.json").write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"image_size": 224, "layers": 3, "width": 32, "head_width": 8, "patch_size": 14},
        "text_cfg": {"context_length": 16, "vocab_size": 99, "width": 32, "heads": 4, "layers": 1},
    }))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model = open_clip.create_model("llavidal-tiny-vit", pretrained=None)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return model.eval(), checkpoint


def test_open_clip_tower_from_a_checkpoint_file(tiny_open_clip, clip_folder, tmp_path):
    model, checkpoint = tiny_open_clip
    encoder = VideoCueEncoder.from_pretrained("open_clip:llavidal-tiny-vit", pretrained=str(checkpoint), num_frames=4)
    assert len(encoder.tower.visual.transformer.resblocks) == 2 and encoder.spec.num_tokens == 4 + 256
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model.visual.forward_intermediates(pixels, indices=[1], output_fmt="NLC",
                                                      intermediates_only=True)["image_intermediates"][0]
        assert torch.allclose(encoder.tower(pixels), expected, atol=1e-6)
    features = encoder.encode([clip_folder / "medium.mp4"])[0]
    assert features.shape == (4 + 256, 32)
    encoder.save_pretrained(tmp_path / "saved")
    loaded = VideoCueEncoder.from_pretrained(tmp_path / "saved")
    assert loaded.source == f"open_clip:llavidal-tiny-vit@{checkpoint}"
    assert torch.equal(loaded.encode([clip_folder / "medium.mp4"])[0], features)


def test_hub_ids_from_an_offline_cache(tiny_clip_dir, clip_folder, tmp_path, offline_hub):
    encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=3, pool="spatial")
    encoder.save_pretrained(tmp_path / "saved")
    offline_hub.add("llavidal-test/tiny-clip", tiny_clip_dir)
    offline_hub.add("llavidal-test/video-encoder", tmp_path / "saved")
    clip = VideoCueEncoder.from_pretrained("llavidal-test/tiny-clip", num_frames=3, pool="spatial")
    saved = VideoCueEncoder.from_pretrained("llavidal-test/video-encoder")
    assert saved.pool == "spatial" and clip.source == "llavidal-test/tiny-clip"
    expected = encoder.encode([clip_folder / "medium.mp4"])[0]
    for loaded in (clip, saved):
        assert torch.equal(loaded.encode([clip_folder / "medium.mp4"])[0], expected)


def test_sampling_options_reach_the_decoder(tiny_clip_dir, clip_folder):
    from llavidal_video.sampling import fps_indices, uniform_indices

    path = clip_folder / "long.avi"  # 130 frames at 10 fps
    uniform = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=5, sampling="uniform").frame_source()(path)
    assert uniform.indices == uniform_indices(130, 5)
    by_fps = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=100, sampling="fps", sampling_fps=2.0)
    video = by_fps.frame_source()(path)
    assert video.indices == fps_indices(np.arange(130) / 10.0, 2.0, 100) == list(range(0, 130, 5))
    assert video.timestamps == [index / 10 for index in video.indices]
    assert by_fps.encode([video])[0].shape == (100 + 256, 32)


def test_the_inference_encoder_applies_the_same_rule_to_damaged_files(tiny_clip_dir, cut_clips):
    """`encode` (what the inference pipeline calls) gives the extraction's outcome, whatever its thread count."""
    for threads in (0, 1):
        encoder = VideoCueEncoder.from_pretrained(tiny_clip_dir, num_frames=8, decode_threads=threads)
        with pytest.raises(VideoDecodeError, match="rejected its data after 109 of the 146 frames"):
            encoder.encode([cut_clips["cut_inside_a_packet"]])
        with pytest.raises(VideoDecodeError, match="only 30 of the 146 frames its header claims"):
            encoder.encode([cut_clips["cut_after_30_packets"]])
        short = encoder.frame_source()(cut_clips["cut_after_110_packets"])
        assert (short.total_frames, short.claimed_frames) == (110, 146)
