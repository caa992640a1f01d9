"""Loading llavidal models strictly: no missing weight silently random, no NaN weights, clear config errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import llavidal_core.modeling  # noqa: F401 - registers the Auto classes
from llavidal_core.finite import NonFiniteError
from llavidal_core.modeling import LlavidalConfig, LlavidalForConditionalGeneration
from llavidal_core.modeling.adapter import ADAPTER_WEIGHTS_NAME, OUTPUT_ROWS_KEY, AdapterError
from llavidal_core.modeling.configuration_llavidal import NotALlavidalModelError
from llavidal_core.modeling.modeling_llavidal import MissingWeightsError
from llavidal_core.testing.tiny_fusion import TINY_CUES, build_tiny_llavidal


def rewrite_weights(file, change):
    """Rewrite a safetensors file with ``change(state)`` applied, keeping its metadata."""
    from safetensors import safe_open

    with safe_open(file, framework="pt") as reader:
        metadata = reader.metadata()
    state = load_file(file)
    save_file(change(state), file, metadata=metadata)


def without(prefix):
    return lambda state: {key: value for key, value in state.items() if not key.startswith(prefix)}


@pytest.fixture
def saved_model(tmp_path):
    cues = (dataclasses.replace(TINY_CUES[0], standardize=True), *TINY_CUES[1:])
    model, processor = build_tiny_llavidal(cues)
    model.fit_feature_statistics("video", torch.full((12,), 0.5), torch.full((12,), 2.0))
    model.save_pretrained(tmp_path / "model", processor=processor)
    return tmp_path / "model"


def test_a_complete_checkpoint_loads_and_still_gives_loading_info(saved_model):
    model, info = LlavidalForConditionalGeneration.from_pretrained(saved_model, output_loading_info=True)
    assert isinstance(model, LlavidalForConditionalGeneration) and not info["missing_keys"]
    assert model.projectors["video"].is_fitted


@pytest.mark.parametrize("prefix, expected", [
    ("projectors.video.", "projectors.video.feature_mean, projectors.video.feature_std, projectors.video.fitted, "
                          "projectors.video.projector.bias, projectors.video.projector.weight"),
    ("projectors.video.feature_", "projectors.video.feature_mean, projectors.video.feature_std"),
    ("language_model.model.embed_tokens.", "language_model.model.embed_tokens.weight"),
])
def test_a_checkpoint_missing_weights_is_an_error_naming_the_folder_and_keys(saved_model, prefix, expected):
    from transformers import AutoModelForCausalLM

    rewrite_weights(saved_model / "model.safetensors", without(prefix))
    for load in (LlavidalForConditionalGeneration.from_pretrained, AutoModelForCausalLM.from_pretrained):
        with pytest.raises(MissingWeightsError) as error:
            load(saved_model)
        assert str(error.value).startswith(f"{saved_model}: the checkpoint lacks")
        assert expected in str(error.value)


def test_a_checkpoint_with_nan_projector_weights_is_refused(saved_model):
    def poison(state):
        state["projectors.pose.weight"][0, 0] = float("nan")
        return state

    rewrite_weights(saved_model / "model.safetensors", poison)
    with pytest.raises(NonFiniteError, match=rf"{saved_model}: projectors.pose.weight: 1 of \d+ values are not finite"):
        LlavidalForConditionalGeneration.from_pretrained(saved_model)


@pytest.fixture
def saved_adapter(tmp_path):
    model, processor = build_tiny_llavidal()
    model.language_model.save_pretrained(tmp_path / "base")
    model.save_adapter(tmp_path / "adapter", processor)
    return tmp_path / "adapter", tmp_path / "base"


def test_an_adapter_missing_its_output_rows_or_a_projector_is_an_error(saved_adapter):
    adapter, base = saved_adapter
    file = adapter / ADAPTER_WEIGHTS_NAME
    original = load_file(file)
    rewrite_weights(file, without(OUTPUT_ROWS_KEY))  # untied output embeddings: their cue rows would stay the mean
    with pytest.raises(AdapterError, match=rf"{adapter}: {ADAPTER_WEIGHTS_NAME} lacks \['output_embeddings.rows'\]"):
        LlavidalForConditionalGeneration.from_adapter(adapter, base)

    rewrite_weights(file, lambda _: without("projectors.object.")(original))
    with pytest.raises(AdapterError, match=r"lacks \['projectors.object.bias', 'projectors.object.weight'\]"):
        LlavidalForConditionalGeneration.from_adapter(adapter, base)


def test_an_adapter_with_nan_cue_rows_is_refused(saved_adapter):
    adapter, base = saved_adapter

    def poison(state):
        state["input_embeddings.rows"][1, 3] = float("inf")
        return state

    rewrite_weights(adapter / ADAPTER_WEIGHTS_NAME, poison)
    with pytest.raises(NonFiniteError, match=rf"{adapter}: the cue-token rows"):
        LlavidalForConditionalGeneration.from_adapter(adapter, base)


def test_a_text_config_given_as_a_dict_after_construction_becomes_its_config(saved_model):
    config = LlavidalConfig.from_pretrained(saved_model)
    config.text_config = json.loads((saved_model / "config.json").read_text())["text_config"]
    model = LlavidalForConditionalGeneration(config)  # was: 'dict' object has no attribute 'to_dict'
    assert type(model.config.text_config).__name__ == "LlamaConfig" and model.config.hidden_size == 32

    overridden = LlavidalConfig.from_pretrained(saved_model, text_config={"model_type": "llama", "hidden_size": 32,
                                                                           "vocab_size": 108})
    assert type(overridden.text_config).__name__ == "LlamaConfig" and overridden.vocab_size == 108


def test_a_plain_lm_folder_where_a_llavidal_model_is_expected_is_a_clear_error(tmp_path):
    from llavidal_core.testing.tiny_models import save_tiny_causal_lm

    folder = save_tiny_causal_lm(tmp_path / "llama")
    for load in (LlavidalConfig.from_pretrained, LlavidalForConditionalGeneration.from_pretrained):
        with pytest.raises(NotALlavidalModelError, match=rf"{folder}: config.json has model_type 'llama', not a "
                                                         r"llavidal model"):
            load(folder)
