"""LoRA runs save a PEFT adapter folder (``lora/``) beside the projectors and cue rows; merging is an option.

The tiny recipe trains LoRA on its frozen random LM for two steps, then the saved adapter is loaded the two
ways a user would: ``PeftModel.from_pretrained`` onto the plain base LM (text only), and ``from_adapter``
(cue rows, projectors and the LoRA); both give the logits of the merged model that the same run saved.
"""

import json
from pathlib import Path

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.testing.tiny_fusion import TINY_OBJECT, TINY_POSE, TINY_VIDEO, random_cue_features

peft = pytest.importorskip("peft")

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
LORA_RUN = ["train.max_steps=2", "train.trainable=[projectors, embeddings]",
            "train.lora={r: 4, alpha: 8, dropout: 0.0}"]
FEATURES = [{"video": random_cue_features(TINY_VIDEO, seed=1), "object": random_cue_features(TINY_OBJECT, 2, seed=2),
             "pose": random_cue_features(TINY_POSE, seed=3)}]
PLACEHOLDERS = "".join(spec.placeholder for spec in (TINY_VIDEO, TINY_OBJECT, TINY_POSE))
CONVERSATION = [[{"from": "human", "value": f"{PLACEHOLDERS} What is the person doing?"},
                 {"from": "gpt", "value": "The person reads a book"}]]


def fused_logits(model, processor):
    with torch.no_grad():
        return model.eval()(**processor(CONVERSATION, FEATURES)).logits


def text_logits(language_model, input_ids):
    with torch.no_grad():
        return language_model.eval()(input_ids=input_ids).logits


@pytest.mark.slow
def test_a_lora_run_saves_a_peft_adapter_that_loads_with_the_merged_models_logits(in_tiny_root):
    from packaging.version import Version
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM
    from transformers.integrations.peft import MIN_PEFT_VERSION

    from llavidal_core.modeling import LlavidalForConditionalGeneration, LlavidalProcessor

    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/lora-both", *LORA_RUN,
                 "train.save=both"]) == 0
    out = in_tiny_root / "tiny" / "lora-both"
    assert json.loads((out / "llavidal_training.json").read_text())["save"] == "both"
    for name in ("model.safetensors", "adapter.safetensors", "lora/adapter_config.json",
                 "lora/adapter_model.safetensors"):
        assert (out / name).is_file(), name
    lora_config = json.loads((out / "lora" / "adapter_config.json").read_text())
    assert lora_config["base_model_name_or_path"] == "tiny/llm"  # the recipe's model.base
    assert lora_config["peft_type"] == "LORA" and lora_config["r"] == 4
    with safe_open(out / "lora" / "adapter_model.safetensors", framework="pt") as reader:
        keys = sorted(reader.keys())
    assert keys and all("lora_A" in key or "lora_B" in key for key in keys), keys  # no (grown) embeddings

    merged = LlavidalForConditionalGeneration.from_pretrained(out)
    processor = LlavidalProcessor.from_pretrained(out)

    # peft's own loader, onto the plain base LM: the text logits of the merged LM
    base = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    vocab = base.get_input_embeddings().weight.shape[0]
    input_ids = processor.tokenizer("The person reads a book and then sits down", return_tensors="pt").input_ids
    assert int(input_ids.max()) < vocab
    before = text_logits(base, input_ids)
    with_lora = peft.PeftModel.from_pretrained(base, str(out / "lora"))
    want = text_logits(merged.language_model, input_ids)[..., :vocab]
    got = text_logits(with_lora, input_ids)
    assert not torch.allclose(before, want, rtol=0, atol=1e-4)  # the LoRA did train
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    if Version(peft.__version__) >= Version(MIN_PEFT_VERSION):  # transformers' own loader refuses older peft
        got = text_logits(AutoModelForCausalLM.from_pretrained(out / "lora"), input_ids)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()

    # from_adapter: the cue rows, projectors and the LoRA, onto the base it names; merged or kept as peft
    want = fused_logits(merged, processor)
    for merge_lora in (True, False):
        loaded = LlavidalForConditionalGeneration.from_adapter(out, merge_lora=merge_lora)
        assert isinstance(loaded.language_model, peft.PeftModel) is not merge_lora
        got = fused_logits(loaded, processor)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (merge_lora, (got - want).abs().max())


@pytest.mark.slow
def test_a_lora_run_saves_the_adapter_by_default_and_a_later_stage_starts_its_lm_from_it(in_tiny_root, tmp_path):
    """Unset, ``save`` is ``adapter`` for LoRA (no merged weights); the next stage merges that LoRA into its LM."""
    import yaml
    from transformers import AutoModelForCausalLM

    from llavidal_core.modeling import LlavidalForConditionalGeneration

    recipe = yaml.safe_load((RECIPES / "tiny-llavidal-mmpro.yaml").read_text())
    recipe["train"].pop("save")
    recipe["train"].update(max_steps=2, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    recipe["stages"] = [{"name": "lora", "cues": ["video", "pose"]},
                        {"name": "next", "cues": ["video", "pose"], "init_from": ["lora"],
                         "train": {"lora": None, "trainable": ["projectors"], "learning_rate": 0.0}}]
    path = tmp_path / "lora-stages.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "output_dir=tiny/lora-stages"]) == 0

    out = in_tiny_root / "tiny" / "lora-stages"
    first = out / "lora"
    assert json.loads((first / "llavidal_training.json").read_text())["save"] == "adapter"
    assert (first / "lora" / "adapter_config.json").is_file() and (first / "adapter.safetensors").is_file()
    assert not (first / "model.safetensors").exists()
    assert json.loads((out / "next" / "llavidal_training.json").read_text())["save"] == "full"

    adapted = LlavidalForConditionalGeneration.from_adapter(first, base=in_tiny_root / "tiny" / "llm")
    following = LlavidalForConditionalGeneration.from_pretrained(out / "next")  # learning rate 0: its start
    base = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    query = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(adapted.language_model.get_parameter(query), base.get_parameter(query))
    layers = [(name, weight) for name, weight in adapted.language_model.named_parameters() if ".layers." in name]
    assert layers
    for name, weight in layers:  # the LM's own weights: the first stage's LoRA, merged (cue rows go by cue)
        assert torch.allclose(following.language_model.get_parameter(name), weight, rtol=0, atol=1e-6), name


@pytest.mark.parametrize(("train", "message"), [
    ({"trainable": ["llm", "projectors"], "save": "adapter"}, r"train\.save: an adapter \('adapter'\) holds"),
    ({"trainable": ["llm", "projectors"], "save": "both"}, r"train\.save: an adapter \('both'\) holds"),
    ({"save": "merged"}, r"train\.save must be one of \['full', 'adapter', 'both'\]"),
])
def test_saves_that_would_lose_training_or_are_unknown_are_refused(train, message):
    from llavidal_core.training.recipe import RecipeError, recipe_from_dict

    raw = {"output_dir": "out", "model": {"base": "lm"}, "cues": [{"name": "video"}], "train": train}
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(raw)


def test_a_stage_after_a_trained_lm_cannot_save_only_an_adapter():
    from llavidal_core.training.recipe import RecipeError, recipe_from_dict

    raw = {"output_dir": "out", "model": {"base": "lm"}, "cues": [{"name": "video"}],
           "train": {"lora": {"r": 4}},
           "stages": [{"name": "first", "cues": ["video"]},
                      {"name": "second", "cues": ["video"], "init_from": ["first"]}]}
    with pytest.raises(RecipeError, match=r"stages\.second\.train\.save: the stage starts its LM from stage 'first'"):
        recipe_from_dict(raw)
    raw["stages"][1]["train"] = {"save": "full"}
    assert [plan.train.save for plan in recipe_from_dict(raw).stage_plans()] == ["adapter", "full"]


@pytest.mark.parametrize(("train", "save"), [
    ({}, "full"),
    ({"lora": {"r": 4}}, "adapter"),
    ({"lora": {"r": 4}, "save": "full"}, "full"),  # the recipes and the demo that ask for merged weights
    ({"lora": {"r": 4}, "save": "both"}, "both"),
])
def test_the_default_save_is_the_adapter_for_lora_and_the_full_model_otherwise(train, save):
    from llavidal_core.training.recipe import recipe_from_dict

    raw = {"output_dir": "out", "model": {"base": "lm"}, "cues": [{"name": "video"}], "train": train}
    recipe = recipe_from_dict(raw)
    assert recipe.train.resolved_save == save and recipe.stage_plans()[0].train.save == save
