"""CueSpec: validation, row counts and an exact JSON round trip; CueEncoder: checks and Hub I/O."""

import dataclasses
import json

import pytest
import torch

from llavidal_core import CueSpec
from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC

OBJECT_LIKE = CueSpec(
    name="object", placeholder="<object>", patch_token="<object_patch>", start_token="<object_start>",
    end_token="<object_end>", feature_dim=512, tokens_per_item=8, projector="mlp2x_gelu",
    distribution="llavidal-object", version="1.2.3", description="objects: 8 rows per object",
)


@pytest.mark.parametrize("spec", [FAKE_CUE_SPEC, OBJECT_LIKE], ids=["fixed", "variable"])
def test_json_round_trip_is_exact(spec):
    text = spec.to_json()
    again = CueSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert json.loads(text) == dataclasses.asdict(spec)


def test_row_counts():
    assert FAKE_CUE_SPEC.num_rows() == 4 and not FAKE_CUE_SPEC.has_variable_rows
    assert OBJECT_LIKE.num_rows(3) == 24 and OBJECT_LIKE.num_rows(0) == 0
    with pytest.raises(ValueError, match="variable"):
        OBJECT_LIKE.num_rows()


def test_special_tokens_order():
    assert OBJECT_LIKE.special_tokens() == ("<object>", "<object_patch>", "<object_start>", "<object_end>")
    plain = CueSpec(name="x", placeholder="<x>", patch_token="<xp>", feature_dim=1, num_tokens=1)
    assert plain.special_tokens() == ("<x>", "<xp>") and not plain.uses_start_end


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "Video"}, "lower-case"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"num_tokens": None}, "exactly one"),
        ({"tokens_per_item": 8}, "exactly one"),
        ({"num_tokens": -1}, "positive"),
        ({"end_token": None}, "both start_token and end_token"),
        ({"patch_token": "<fake>"}, "must all differ"),
        ({"placeholder": ""}, "non-empty"),
    ],
)
def test_invalid_specs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(FAKE_CUE_SPEC, **changes)


def test_unknown_and_missing_fields_are_named():
    data = FAKE_CUE_SPEC.to_dict() | {"colour": "red"}
    with pytest.raises(ValueError, match="colour"):
        CueSpec.from_dict(data)
    data = FAKE_CUE_SPEC.to_dict()
    del data["feature_dim"]
    with pytest.raises(ValueError, match="feature_dim"):
        CueSpec.from_dict(data)


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAKE_CUE_SPEC.name = "other"


def test_encoder_is_deterministic_and_round_trips_through_save_pretrained(tmp_path):
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder

    encoder = FakeCueEncoder(feature_dim=6, num_tokens=3)
    first = encoder.encode(["clip_a.mp4", "clip_b.mp4"])
    assert [f.shape for f in first] == [(3, 6), (3, 6)]
    assert torch.equal(first[0], encoder.encode(["clip_a.mp4"])[0])
    assert not torch.equal(first[0], first[1])
    encoder.save_pretrained(tmp_path / "enc")
    loaded = FakeCueEncoder.from_pretrained(tmp_path / "enc")
    assert loaded.spec.feature_dim == 6 and loaded.spec.num_tokens == 3
    assert torch.equal(loaded.encode(["clip_a.mp4"])[0], first[0])


def test_encoder_output_is_checked_against_the_spec():
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder

    encoder = FakeCueEncoder()
    with pytest.raises(ValueError, match=r"'fake'.*5 rows for bad.mp4, expected 4"):
        encoder.check_features(torch.zeros(5, 8), source="bad.mp4")
    with pytest.raises(ValueError, match=r"shape \(4, 7\)"):
        encoder.check_features(torch.zeros(4, 7))


def test_encoder_with_missing_weights_refuses_to_load(tmp_path):
    from safetensors.torch import load_file, save_file

    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder

    FakeCueEncoder().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["mix.bias"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="mix.bias"):
        FakeCueEncoder.from_pretrained(tmp_path)
