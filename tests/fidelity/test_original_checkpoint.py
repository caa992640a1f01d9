"""The original's base + projection file, converted, give the original model's logits (values from its own code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

DATA = Path(__file__).parent / "data"
BASE = DATA / "llava_lightening_tiny"


def deterministic_video_features() -> torch.Tensor:
    """The features make_original_expected.py gave the original model: (356, 1024) float16, no RNG involved."""
    return (torch.sin(torch.arange(356 * 1024, dtype=torch.float32) * 0.37) * 0.5).reshape(356, 1024).half()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from llavidal_core.cli import main

    out = tmp_path_factory.mktemp("converted") / "llavidal"
    assert main(["convert", "legacy", "--base", str(BASE), "--projection", str(DATA / "llavidal_weights.bin"),
                 "--out", str(out)]) == 0
    return out


def test_the_llava_base_is_read_as_the_llama_it_wraps():
    from llavidal_core.base_models import load_base_language_model

    config = json.loads((BASE / "config.json").read_text())
    assert config["model_type"] == "llava" and not list(BASE.glob("tokenizer.json"))
    model = load_base_language_model(BASE)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.get_input_embeddings().weight.shape[0] == config["vocab_size"]


def test_converted_model_gives_the_original_models_logits(converted):
    from transformers import AutoModelForCausalLM, AutoProcessor  # noqa: F401 (Auto classes registered below)

    import llavidal_core.modeling  # noqa: F401
    from llavidal_core.processing import LlavidalProcessor

    with safe_open(DATA / "expected_logits.safetensors", framework="pt") as reader:
        expected = {key: reader.get_tensor(key) for key in reader.keys()}
        metadata = reader.metadata()
    processor = LlavidalProcessor.from_pretrained(converted)
    assert processor.tokenization == "sentencepiece_legacy"
    encoded = processor.encode([{"from": "human", "value": metadata["question"] + "\n<video>"}], {"video": 356},
                               add_generation_prompt=True)
    assert encoded.input_ids == expected["input_ids"].tolist()

    model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=expected["input_ids"][None],
                       cue_features={"video": deterministic_video_features()[None]}).logits[0]
    base_vocab = int(metadata["base_vocab_size"])
    ours = logits[expected["text_positions"], :base_vocab]
    torch.testing.assert_close(ours, expected["logits"], rtol=1e-5, atol=1e-5)
    assert ours.argmax(-1).tolist() == expected["logits"].argmax(-1).tolist()


def test_training_starts_the_video_projector_from_llavas_as_the_original_does():
    import torch

    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.seed_cues import LLAVIDAL_CUES, VIDEO
    from llavidal_core.training import model_setup
    from llavidal_core.training.recipe import ModelSection

    section = ModelSection(base=str(BASE))
    processor = LlavidalProcessor(model_setup.load_tokenizer(section), LLAVIDAL_CUES,
                                  tokenization="sentencepiece_legacy")
    model = model_setup.build_model(section, LLAVIDAL_CUES, processor)
    reader = torch.load(BASE / "pytorch_model-00001-of-00002.bin", weights_only=True) | torch.load(
        BASE / "pytorch_model-00002-of-00002.bin", weights_only=True)
    assert torch.equal(model.projectors["video"].weight, reader["model.mm_projector.weight"].float())
    assert torch.equal(model.projectors["video"].bias, reader["model.mm_projector.bias"].float())
    assert not torch.equal(model.projectors["pose"].weight[:, :8], reader["model.mm_projector.weight"][:, :8].float())

    other_width = [VIDEO.__class__.from_dict(VIDEO.to_dict() | {"feature_dim": 512})]
    small = LlavidalProcessor(model_setup.load_tokenizer(section), other_width)
    assert not model_setup.start_video_projector_from_llava(
        model_setup.build_model(section, other_width, small), str(BASE))


def test_convert_legacy_refuses_a_non_empty_out_and_leaves_nothing_when_it_fails(converted, tmp_path, capsys):
    from llavidal_core.cli import main

    before = sorted(p.name for p in converted.iterdir())
    assert main(["convert", "legacy", "--base", str(BASE), "--projection", str(DATA / "llavidal_weights.bin"),
                 "--out", str(converted)]) == 1
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in converted.iterdir()) == before

    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "failed"
    assert main(["convert", "legacy", "--base", str(BASE), "--projection", str(broken), "--out", str(out)]) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".failed")]

    assert main(["convert", "legacy", "--base", str(BASE), "--projection", str(DATA / "llavidal_weights.bin"),
                 "--out", str(converted), "--overwrite"]) == 0
