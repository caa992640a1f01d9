"""The real model wrappers with tiny random BLIP-2, OWLv2 and CLIP folders, and the whole chain on real videos."""

import json

import numpy as np
import pytest
import torch

from llavidal_object.encoder import ObjectCueEncoder
from llavidal_object.models import ModelLoadError, load_model_and_processor
from llavidal_object.tagger import Blip2Tagger


def test_blip2_tagger_answers_each_frame_with_generated_text(tiny_blip2_dir):
    model, processor = load_model_and_processor("Blip2ForConditionalGeneration", str(tiny_blip2_dir), "--tagger")
    tagger = Blip2Tagger(model, processor, max_new_tokens=5, batch_size=2)
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    answers = tagger.answers(list(frames))
    assert answers == ["cup cup cup cup cup"] * 3  # the prompt and the image tokens are not part of the answer


def test_clip_crop_encoder_loads_from_a_full_clip_folder(crop_encoder):
    crops = [np.full((10, 20, 3), 128, np.uint8), np.zeros((5, 5, 3), np.uint8)]
    features = crop_encoder.encode(crops)
    assert features.shape == (2, 32) and features.dtype == torch.float32
    assert crop_encoder.encode([]).shape == (0, 32)


def test_a_folder_without_the_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="--detector"):
        load_model_and_processor("Owlv2ForObjectDetection", str(tmp_path), "--detector")


@pytest.fixture(scope="module")
def object_encoder(tiny_blip2_dir, tiny_owlv2_dir, tiny_clip_dir):
    return ObjectCueEncoder(tagger=str(tiny_blip2_dir), detector=str(tiny_owlv2_dir), encoder=str(tiny_clip_dir),
                            num_frames=4, num_keyframes=2, max_objects=3, batch_size=4)


@pytest.mark.parametrize("name", ["nasa_13013.mp4", "video_0.mov", "ntu_sample.avi"])
def test_whole_chain_on_real_videos(object_encoder, shared_data, name):
    result, video = object_encoder.extract(str(shared_data / "videos" / name))
    n = len(result.tracks)
    assert result.answers and result.tags == ["cup"]
    assert 0 <= n <= 3
    assert result.features.shape == (n, 8, 32)
    assert torch.isfinite(result.features).all()
    height, width = video.frames.shape[1:3]
    for trajectory in json.loads(result.metadata()["trajectories"]):
        assert trajectory["label"] in result.tags and len(trajectory["feature_frames"]) == 8
        for detection in trajectory["detections"]:
            x1, y1, x2, y2 = detection["box"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert detection["frame"] in video.indices
    rows = object_encoder.encode([str(shared_data / "videos" / name)])[0]
    assert rows.shape == (8 * n, 32)


def test_encoder_spec_and_config_round_trip(tiny_owlv2_dir, tiny_clip_dir, tmp_path):
    encoder = ObjectCueEncoder(tagger=None, detector=str(tiny_owlv2_dir), encoder=str(tiny_clip_dir),
                               tags=["cup", "phone"], max_objects=2)
    assert encoder.tagger is None and encoder.tagger_model is None
    assert encoder.spec.name == "object" and encoder.spec.tokens_per_item == 8 and encoder.spec.feature_dim == 32
    encoder.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir() if p.suffix != ".md") == ["config.json"]
    loaded = ObjectCueEncoder.from_pretrained(tmp_path / "saved")
    assert loaded.tags == ["cup", "phone"] and loaded.options == encoder.options
    assert loaded.describe() == {"detector": str(tiny_owlv2_dir), "encoder": str(tiny_clip_dir)}


def test_encoder_needs_tags_or_a_tagger(tiny_owlv2_dir, tiny_clip_dir):
    with pytest.raises(ValueError, match="tagger"):
        ObjectCueEncoder(tagger=None, detector=str(tiny_owlv2_dir), encoder=str(tiny_clip_dir))


def test_half_precision_models_give_float32_features(tiny_blip2_dir, tiny_owlv2_dir, tiny_clip_dir, shared_data):
    encoder = ObjectCueEncoder(tagger=str(tiny_blip2_dir), detector=str(tiny_owlv2_dir), encoder=str(tiny_clip_dir),
                               num_frames=3, num_keyframes=1, dtype="bfloat16")
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    result, _ = encoder.extract(str(shared_data / "videos" / "nasa_13013.mp4"))
    assert result.tags == ["cup"]
    assert result.features.dtype == torch.float32 and result.features.shape[1:] == (8, 32)


def test_the_registered_encoder_is_the_object_cue_encoder(llavidal_plugins):
    import llavidal_object.plugin

    llavidal_plugins.register(llavidal_object.plugin, name="object")
    assert llavidal_plugins.cue("object").encoder_factory() is ObjectCueEncoder
