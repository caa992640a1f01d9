"""Standardised cues: per-dimension feature statistics in front of a projector, saved and loaded with the model."""

import dataclasses

import pytest
import torch

from llavidal_core.cues import CueSpec
from llavidal_core.modeling.standardize import StandardizedProjector, feature_statistics
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_OBJECT, TINY_POSE, TINY_VIDEO, build_tiny_llavidal

STANDARDIZED_CUES = (dataclasses.replace(TINY_VIDEO, standardize=True), TINY_OBJECT, TINY_POSE)


def test_statistics_over_many_tensors_equal_those_of_all_rows_at_once():
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(n, 4, 3, generator=generator) * 5 + 2 for n in (1, 3, 2)]
    mean, std, rows = feature_statistics(tensors, 3)
    every_row = torch.cat([t.reshape(-1, 3) for t in tensors]).double()
    assert rows == 24
    torch.testing.assert_close(mean, every_row.mean(0).float())
    torch.testing.assert_close(std, every_row.std(0, unbiased=False).float())
    with pytest.raises(ValueError, match="no feature rows"):
        feature_statistics([], 3)


def test_the_projector_sees_standardised_rows_and_constant_dimensions_are_left_alone():
    inner = torch.nn.Linear(3, 2)
    projector = StandardizedProjector(inner, 3)
    rows = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])
    assert not projector.is_fitted and torch.equal(projector(rows), inner(rows))  # unfitted: the identity
    projector.fit(torch.tensor([2.0, 2.0, 1.0]), torch.tensor([1.0, 0.0, 2.0]))
    assert projector.is_fitted
    torch.testing.assert_close(projector(rows), inner(torch.tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]])))
    with pytest.raises(ValueError, match="features of width 3"):
        projector.fit(torch.zeros(4), torch.ones(4))


def test_the_spec_flag_round_trips_and_is_checked():
    spec = dataclasses.replace(TINY_VIDEO, standardize=True)
    assert CueSpec.from_json(spec.to_json()) == spec
    old = {key: value for key, value in TINY_VIDEO.to_dict().items() if key != "standardize"}
    assert CueSpec.from_dict(old).standardize is False  # specs saved before the flag existed
    with pytest.raises(ValueError, match="standardize must be true or false"):
        dataclasses.replace(TINY_VIDEO, standardize="yes")


def fitted_model():
    model, processor = build_tiny_llavidal(cues=STANDARDIZED_CUES, seed=3)
    assert model.unfitted_standardized_cues() == ["video"]
    model.fit_feature_statistics("video", torch.linspace(-1, 1, 12), torch.linspace(0.5, 2, 12))
    assert model.unfitted_standardized_cues() == []
    return model, processor


def test_statistics_are_buffers_of_the_cue_s_projector_saved_and_loaded_with_the_model(tmp_path):
    from llavidal_core.modeling import LlavidalForConditionalGeneration

    model, processor = fitted_model()
    state = model.state_dict()
    assert {"projectors.video.feature_mean", "projectors.video.feature_std", "projectors.video.fitted",
            "projectors.video.projector.weight", "projectors.pose.weight"} <= set(state)
    assert not any(name.endswith("feature_mean") for name, _ in model.named_parameters())  # never trained
    with pytest.raises(ValueError, match="cue 'pose' is not standardised"):
        model.fit_feature_statistics("pose", torch.zeros(7), torch.ones(7))

    features = {"video": torch.randn(1, 5, 12), "pose": torch.randn(1, 3, 7)}
    expected = model.project_cue_features("video", features["video"])
    model.save_pretrained(tmp_path / "full", processor=processor)
    model.save_adapter(tmp_path / "adapter", processor)
    loaded = {
        "full": LlavidalForConditionalGeneration.from_pretrained(tmp_path / "full"),
        "adapter": LlavidalForConditionalGeneration.from_adapter(tmp_path / "adapter", base=build_tiny_llavidal(
            cues=STANDARDIZED_CUES, seed=3)[0].language_model),
    }
    for how, again in loaded.items():
        assert again.unfitted_standardized_cues() == [], how
        torch.testing.assert_close(again.project_cue_features("video", features["video"]), expected)


def test_a_model_without_standardised_cues_keeps_llavidal_s_projector_keys():
    model, _ = build_tiny_llavidal(cues=TINY_CUES)
    assert {"projectors.video.weight", "projectors.video.bias"} <= set(model.state_dict())
    assert model.unfitted_standardized_cues() == []
