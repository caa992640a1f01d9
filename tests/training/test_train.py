"""``llavidal train``: the tiny recipes end to end on CPU, the 7B recipes as dry runs, the MMPro hand-off."""

import json
import re
from pathlib import Path

import pytest
import torch

from llavidal_core.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def log_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_tiny_recipe_trains_the_loss_falls_and_the_output_loads_and_generates(in_tiny_root, capsys):
    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/run", "train.max_steps=12",
                 "train.save_steps=6"]) == 0
    out = in_tiny_root / "tiny" / "run"
    records = log_records(out / "log.jsonl")
    data = next(r for r in records if r.get("event") == "data")
    assert data["kept"] == 32 and data["skipped"] == 0
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.4, losses
    step_record = next(r for r in records if "loss" in r)
    assert step_record["tokens_per_second"] > 0 and step_record["samples_skipped"] == 0
    assert {"learning_rate", "step", "epoch"} <= set(step_record)
    assert (out / "checkpoint-6" / "optimizer.pt").is_file() and (out / "llavidal_training.json").is_file()
    err = capsys.readouterr().err
    assert "data: 32 of 32 samples kept" in err
    # not a terminal: one compact line per logging step instead of progress bars and raw dicts
    assert re.search(r"llavidal train: stage main: step \d+/12, epoch [\d.]+, loss [\d.]+", err), err[-2000:]
    assert "{'loss'" not in err and "it/s]" not in err

    import llavidal_core.modeling  # noqa: F401 - registers the Auto classes
    from transformers import AutoModelForCausalLM

    from llavidal_core.features import FeatureStore
    from llavidal_core.processing import LlavidalProcessor

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    processor = LlavidalProcessor.from_pretrained(out)
    stored = FeatureStore(in_tiny_root / "tiny" / "features").read_all("001_video_001")
    features = {cue: tensor.reshape(-1, tensor.shape[-1]) for cue, tensor in stored.items()}
    prompt = [{"from": "human", "value": "<video><object><human_pose>\nWhat is the person doing in the video?"}]
    batch = processor([prompt], [features], add_generation_prompt=True)
    generated = model.generate(**batch, max_new_tokens=6, do_sample=False,
                               pad_token_id=processor.tokenizer.pad_token_id)
    assert generated.shape[1] > batch["input_ids"].shape[1]


@pytest.mark.parametrize("recipe", ["llavidal-7b-video.yaml", "llavidal-7b-mmpro.yaml"])
def test_7b_recipes_validate_offline_with_dry_run(recipe, in_tiny_root, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["train", str(RECIPES / recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model: mmaaz60/LLaVA-7B-Lightening-v1-1 [llama, float32]" in out
    assert "parameters: 6,7" in out and "projectors: " in out and "embeddings (cue rows): " in out
    if recipe == "llavidal-7b-mmpro.yaml":
        assert out.count("stage ") == 5
        assert "stage video_object_pose: cues ['video', 'object', 'pose'], init_from ['object', 'video_pose']" in out
        assert "projectors: 7,188,480" in out  # the last stage: 1024/512/216 -> 4096 linear, with bias
        assert "embeddings (cue rows): 73,728" in out  # 9 cue tokens x 4096, input and output rows
    else:
        assert "projectors: 4,198,400" in out


def test_a_run_refuses_an_output_dir_that_holds_one_unless_resumed(in_tiny_root, capsys):
    (in_tiny_root / "tiny" / "taken" / "checkpoint-3").mkdir(parents=True)
    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/taken"]) == 1
    assert "already holds a run (stage main); pass --resume" in capsys.readouterr().err


def test_a_malformed_instruction_line_fails_with_its_line_number(in_tiny_root, capsys):
    bad = in_tiny_root / "tiny" / "bad.jsonl"
    good = json.loads((in_tiny_root / "tiny" / "train.json").read_text())[0]
    bad.write_text(json.dumps(good) + "\n" + json.dumps({"id": "x", "conversations": "oops"}) + "\n")
    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/bad", f"data.train={bad}"]) == 1
    error = capsys.readouterr().err
    assert "bad.jsonl: line 2: 'conversations' must be a list" in error


@pytest.mark.slow
def test_tiny_mmpro_recipe_runs_every_stage(in_tiny_root):
    assert main(["train", str(RECIPES / "tiny-llavidal-mmpro.yaml"), "output_dir=tiny/mmpro", "train.max_steps=2"]) == 0
    out = in_tiny_root / "tiny" / "mmpro"
    stages = ["video", "object", "pose", "video_pose", "all"]
    summaries = {s: json.loads((out / s / "llavidal_training.json").read_text()) for s in stages}
    assert summaries["video_pose"]["init_from"] == ["video", "pose"]
    assert all(summaries[s]["global_step"] == 2 for s in stages)
    assert (out / "video" / "adapter.safetensors").is_file() and (out / "all" / "model.safetensors").is_file()
    data = {r["stage"]: r for r in log_records(out / "log.jsonl") if r.get("event") == "data"}
    assert data["video"]["unused_placeholders_removed"] == {"object": 32, "pose": 32}
    assert data["all"]["unused_placeholders_removed"] == {}

    import llavidal_core.modeling  # noqa: F401
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out / "all")
    assert final.config.cue_names == ("video", "object", "pose")
    # the LM and the base vocabulary rows never train in this recipe
    base = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    rows = base.get_input_embeddings().weight.shape[0]
    assert torch.equal(final.get_input_embeddings().weight[:rows], base.get_input_embeddings().weight)
    assert torch.equal(final.language_model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


@pytest.mark.slow
def test_lora_trains_adapters_on_the_frozen_lm_and_saves_them_merged(in_tiny_root):
    pytest.importorskip("peft")
    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/lora", "train.max_steps=2",
                 "train.trainable=[projectors, embeddings]", "train.lora={r: 4, alpha: 8}"]) == 0
    import llavidal_core.modeling  # noqa: F401
    from transformers import AutoModelForCausalLM

    out = in_tiny_root / "tiny" / "lora"
    summary = json.loads((out / "llavidal_training.json").read_text())
    assert set(summary["parameters"]) == {"lora", "projectors", "embeddings (cue rows)"}
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    tuned_layer, base_layer = tuned.language_model.model.layers[0], base.model.layers[0]
    assert not torch.equal(tuned_layer.self_attn.q_proj.weight, base_layer.self_attn.q_proj.weight)
    assert torch.equal(tuned_layer.self_attn.k_proj.weight, base_layer.self_attn.k_proj.weight)
    rows = base.get_input_embeddings().weight.shape[0]
    assert torch.equal(tuned.get_input_embeddings().weight[:rows], base.get_input_embeddings().weight)
    assert not any("lora" in name for name, _ in tuned.named_parameters())


def test_a_stage_that_fine_tuned_the_lm_hands_it_on(in_tiny_root, tmp_path, capsys):
    """A curriculum that trains the LM: the next stage starts from that LM, not from the untrained base."""
    import yaml

    recipe = yaml.safe_load((RECIPES / "tiny-llavidal-mmpro.yaml").read_text())
    recipe["train"].update(trainable=["llm", "projectors", "embeddings"], save="full", max_steps=2)
    recipe["stages"] = [{"name": "video_pose", "cues": ["video", "pose"]},
                        {"name": "all", "cues": ["video", "object", "pose"], "init_from": ["video_pose"],
                         "train": {"learning_rate": 0.0}}]
    path = tmp_path / "lm-handoff.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "output_dir=tiny/lm-handoff"]) == 0
    assert "stage all: started the LM from stage video_pose" in capsys.readouterr().err

    import llavidal_core.modeling  # noqa: F401
    from transformers import AutoModelForCausalLM

    out = in_tiny_root / "tiny" / "lm-handoff"
    first, last = (AutoModelForCausalLM.from_pretrained(out / s) for s in ("video_pose", "all"))
    base = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    layer = "language_model.model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(first.get_parameter(layer), base.model.layers[0].mlp.up_proj.weight)
    for name, weight in first.named_parameters():
        assert torch.equal(last.get_parameter(name), weight), name  # learning rate 0: what it started from


def test_a_standardised_cue_is_fitted_on_its_first_stage_and_handed_on(in_tiny_root, tmp_path, capsys):
    import yaml

    from llavidal_core.features import FeatureStore
    from llavidal_core.modeling.standardize import feature_statistics

    recipe = yaml.safe_load((RECIPES / "tiny-llavidal-mmpro.yaml").read_text())
    recipe["train"].update(max_steps=1)
    recipe["cues"][2]["standardize"] = True  # pose; the tiny world has one pose file per video
    recipe["stages"] = [{"name": "pose", "cues": ["pose"]},
                        {"name": "all", "cues": ["video", "object", "pose"], "init_from": ["pose"],
                         "train": {"save": "full"}}]
    path = tmp_path / "standardize.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "output_dir=tiny/standardize"]) == 0
    err = capsys.readouterr().err
    assert err.count("features standardised") == 1
    assert "stage pose: pose features standardised with the statistics of 96 rows" in err  # 32 videos x 3 rows

    import llavidal_core.modeling  # noqa: F401
    from transformers import AutoModelForCausalLM

    store = FeatureStore(in_tiny_root / "tiny" / "features")
    ids = sorted({r["id"] for r in json.loads((in_tiny_root / "tiny" / "train.json").read_text())})
    mean, std, _ = feature_statistics([store.read(i, "pose") for i in ids], 7)
    final = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "standardize" / "all")
    assert final.config.cue_specs[2].standardize and final.unfitted_standardized_cues() == []
    torch.testing.assert_close(final.projectors["pose"].feature_mean, mean)
    torch.testing.assert_close(final.projectors["pose"].feature_std, std)


def test_trains_from_a_llava_style_base_with_the_original_tokenization(in_tiny_root):
    """A LLaVA-Lightening-like folder (model_type llava, .bin shards, tokenizer.model only) is a base LM."""
    base = Path(__file__).resolve().parents[1] / "fidelity" / "data" / "llava_lightening_tiny"
    assert main(["train", str(RECIPES / "tiny-llavidal.yaml"), "output_dir=tiny/from-llava", "train.max_steps=2",
                 f"model.base={base}", "model.tokenizer=null", "data.tokenization=sentencepiece_legacy"]) == 0
    out = in_tiny_root / "tiny" / "from-llava"
    saved = json.loads((out / "processor_config.json").read_text())
    assert saved["tokenization"] == "sentencepiece_legacy"
    config = json.loads((out / "config.json").read_text())
    assert config["text_config"]["model_type"] == "llama" and config["text_config"]["vocab_size"] == 703 + 9
