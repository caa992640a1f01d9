"""Recipe cues into specs: seed cues, installed plugins, inline specs, and the errors for unknown ones."""

import pytest

from llavidal_core.training.model_setup import resolve_cue_specs
from llavidal_core.training.recipe import CueSection, RecipeError


def test_seed_cues_with_inline_field_overrides(llavidal_plugins):
    video, objects = resolve_cue_specs([CueSection("video", spec={"feature_dim": 12, "num_tokens": 5}),
                                        CueSection("object", projector="mlp2x_gelu", spec={"tokens_per_item": 2})])
    assert (video.placeholder, video.feature_dim, video.num_tokens) == ("<video>", 12, 5)
    assert (objects.projector, objects.tokens_per_item, objects.num_tokens) == ("mlp2x_gelu", 2, None)


def test_a_plugin_cue_and_a_cue_defined_inline(fake_cue_plugins):
    fake, imu = resolve_cue_specs([
        CueSection("fake"),
        CueSection("imu", spec={"placeholder": "<imu>", "patch_token": "<imu_patch>", "feature_dim": 6,
                                "num_tokens": 4}),
    ])
    assert fake.distribution == "llavidal-fake" and fake.feature_dim == 8
    assert imu.placeholder == "<imu>" and imu.projector == "linear"


def test_unknown_cues_fields_and_projectors_name_the_cue(llavidal_plugins):
    with pytest.raises(RecipeError, match=r"cues.0 \(imu\).spec: .*no installed plugin or seed cue is called 'imu'"):
        resolve_cue_specs([CueSection("imu")])
    with pytest.raises(RecipeError, match=r"cues.0 \(video\).spec: unknown spec fields \['dims'\]"):
        resolve_cue_specs([CueSection("video", spec={"dims": 3})])
    with pytest.raises(RecipeError, match="cues.0.projector: no projector 'qformer' is registered"):
        resolve_cue_specs([CueSection("video", projector="qformer")])
