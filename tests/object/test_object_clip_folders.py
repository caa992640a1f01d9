"""Every CLIP folder a user would give ``--encoder`` loads with its own weights, or is a clear error.

The folders are written here as ``save_pretrained`` writes them: a full `CLIPModel` whose vision config
carries no projection size of its own (transformers then writes the default 512, as Hub checkpoints of
other sizes do), a `CLIPVisionModelWithProjection`, a bare `CLIPVisionModel`, and a model that is not CLIP.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from llavidal_object.crop_encoder import ClipCropEncoder
from llavidal_object.encoder import ObjectCueEncoder
from llavidal_object.models import ModelLoadError, load_crop_encoder, load_model_and_processor

IMAGE_SIZE = 30


def clip_vision_config(projection_dim=None):
    from transformers import CLIPVisionConfig

    extra = {} if projection_dim is None else {"projection_dim": projection_dim}
    return CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=2, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=37, **extra)


def save_image_processor(folder: Path) -> None:
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                       crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)


def save_full_clip(folder: Path, projection_dim: int):
    """A `CLIPModel` with ``projection_dim`` set only at the top, as a user's checkpoint may have it."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    text = CLIPTextConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37, max_position_embeddings=77)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=clip_vision_config().to_dict(),
                        projection_dim=projection_dim)
    torch.manual_seed(projection_dim)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    save_image_processor(folder)
    return model


def save_vision_model(folder: Path, class_name: str, projection_dim=None):
    import transformers

    torch.manual_seed(1)
    model = getattr(transformers, class_name)(clip_vision_config(projection_dim)).eval()
    model.save_pretrained(folder)
    save_image_processor(folder)
    return model


def reference_embeddings(vision_model, projection, crops) -> torch.Tensor:
    """CLIP's projected image embeddings computed from the saved model itself."""
    from transformers import CLIPImageProcessor

    pixels = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})(
        images=crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return projection(vision_model(pixel_values=pixels).pooler_output)


CROPS = [np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8),
         np.full((6, 6, 3), 200, np.uint8)]


@pytest.mark.parametrize("projection_dim", [16, 24])
def test_a_full_clip_model_loads_with_its_own_projection(projection_dim, tmp_path):
    saved = save_full_clip(tmp_path / "clip", projection_dim)
    model, image_processor = load_crop_encoder(str(tmp_path / "clip"))
    encoder = ClipCropEncoder(model, image_processor)
    assert encoder.feature_dim == projection_dim
    expected = reference_embeddings(saved.vision_model, saved.visual_projection, CROPS)
    torch.testing.assert_close(encoder.encode(CROPS), expected)


def test_a_vision_tower_with_projection_loads(tmp_path):
    saved = save_vision_model(tmp_path / "tower", "CLIPVisionModelWithProjection", projection_dim=24)
    model, image_processor = load_crop_encoder(str(tmp_path / "tower"))
    encoder = ClipCropEncoder(model, image_processor)
    assert encoder.feature_dim == 24
    expected = reference_embeddings(saved.vision_model, saved.visual_projection, CROPS)
    torch.testing.assert_close(encoder.encode(CROPS), expected)


def test_a_bare_vision_tower_is_refused_for_its_missing_projection(tmp_path):
    save_vision_model(tmp_path / "bare", "CLIPVisionModel")
    with pytest.raises(ModelLoadError, match=r"--encoder '.*bare': a CLIP vision tower without its projection"):
        load_crop_encoder(str(tmp_path / "bare"))


def test_a_folder_that_is_not_clip_is_refused(tiny_owlv2_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="holds a 'owlv2' model, not CLIP"):
        load_crop_encoder(str(tiny_owlv2_dir))
    with pytest.raises(ModelLoadError, match="--encoder .*cannot load a model config"):
        load_crop_encoder(str(tmp_path))


def test_a_detector_folder_holding_another_model_is_refused(tiny_clip_dir):
    with pytest.raises(ModelLoadError, match="--detector .* holds a 'clip' model, not the 'owlv2' model"):
        load_model_and_processor("Owlv2ForObjectDetection", str(tiny_clip_dir), "--detector")


def test_the_object_cue_takes_its_feature_size_from_the_clip_folder(tiny_owlv2_dir, tmp_path):
    save_full_clip(tmp_path / "clip", 24)
    encoder = ObjectCueEncoder(tagger=None, detector=str(tiny_owlv2_dir), encoder=str(tmp_path / "clip"),
                               tags=["cup"])
    assert encoder.spec.feature_dim == 24
