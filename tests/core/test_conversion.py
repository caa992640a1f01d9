"""Legacy conversion: the seed's projector checkpoints (both layouts) and LLaVA deltas, through the commands."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from llavidal_core import conversion_commands
from llavidal_core.conversion import ConversionError
from llavidal_core.seed_cues import LLAVIDAL_CUES, VIDEO
from llavidal_core.testing.tiny_models import build_tiny_causal_lm

HIDDEN = 32
BASE_VOCAB = 99
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
SEED_PROJECTOR_KEYS = {"video": "model.mm_projector", "object": "model.mm_projector_forobject",
                       "pose": "model.mm_projector_forpose"}


def parse(add_arguments, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def seed_checkpoint(cues, base_embeddings: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """What the seed's trainer saves: projectors under its key names and the FULL embedding matrix."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for spec in cues:
        state[f"{SEED_PROJECTOR_KEYS[spec.name]}.weight"] = torch.randn(HIDDEN, spec.feature_dim, generator=generator)
        state[f"{SEED_PROJECTOR_KEYS[spec.name]}.bias"] = torch.randn(HIDDEN, generator=generator)
    new_rows = torch.randn(3 * len(cues), HIDDEN, generator=generator)
    drifted = base_embeddings.clone()
    drifted[5] += 1.0  # the seed let every row train
    state["model.embed_tokens.weight"] = torch.cat([drifted, new_rows])
    return state


@pytest.mark.parametrize("cues, token_ids", [
    (LLAVIDAL_CUES, {"video": (99, 102, 103), "object": (100, 104, 105), "pose": (101, 106, 107)}),
    ((VIDEO,), {"video": (99, 100, 101)}),
], ids=["llavidal", "video-chatgpt"])
def test_convert_legacy_checkpoint(cues, token_ids, tiny_llm_dir, tmp_path, capsys):
    import llavidal_core.modeling  # noqa: F401 - registers the Auto classes
    from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    base_embeddings = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).get_input_embeddings().weight.detach()
    state = seed_checkpoint(cues, base_embeddings)
    torch.save(state, tmp_path / "llavidal_weights.bin")
    args = parse(conversion_commands.add_legacy_arguments,
                 ["--base", str(tiny_llm_dir), "--projection", str(tmp_path / "llavidal_weights.bin"),
                  "--out", str(tmp_path / "out")])

    assert conversion_commands.run_legacy(args) == 0

    assert "1 base embedding rows differ" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert model.config.cue_names == tuple(spec.name for spec in cues)
    torch.testing.assert_close(model.get_input_embeddings().weight.detach(), state["model.embed_tokens.weight"],
                               rtol=0, atol=0)
    assert len(tokenizer) == BASE_VOCAB + 3 * len(cues)
    for spec in cues:
        tokens = (spec.patch_token, spec.start_token, spec.end_token)
        assert tuple(tokenizer.convert_tokens_to_ids(t) for t in tokens) == token_ids[spec.name]
        assert processor.cue_token_ids[spec.name] == model.config.cue_token_ids[spec.name]
        prefix = SEED_PROJECTOR_KEYS[spec.name]
        features = torch.randn(4, spec.feature_dim)
        expected = torch.nn.functional.linear(features, state[f"{prefix}.weight"], state[f"{prefix}.bias"])
        with torch.no_grad():
            torch.testing.assert_close(model.projectors[spec.name](features), expected)
    output_rows = model.get_output_embeddings().weight.detach()
    torch.testing.assert_close(output_rows[BASE_VOCAB:], output_rows[:BASE_VOCAB].mean(0).expand(3 * len(cues), -1))


def test_legacy_layout_is_told_apart_by_the_number_of_new_rows(tiny_llm_dir, tmp_path):
    from llavidal_core.conversion.legacy import convert_legacy

    state = seed_checkpoint((VIDEO,), torch.zeros(BASE_VOCAB, HIDDEN))
    state["model.embed_tokens.weight"] = torch.zeros(BASE_VOCAB + 5, HIDDEN)
    torch.save(state, tmp_path / "mm_projector.bin")
    with pytest.raises(ConversionError, match=r"has 104 rows, 5 beyond the base tokenizer's 99; expected 9 \(LLAVIDAL\), "
                                              r"3 \(Video-ChatGPT\)"):
        convert_legacy(str(tiny_llm_dir), tmp_path / "mm_projector.bin", tmp_path / "out")


def write_delta(base, target, folder, as_bin: bool):
    """LLaVA's delta: target - base, tensor by tensor; rows beyond the base are the target's."""
    base_state, delta = base.state_dict(), {}
    for key, value in target.state_dict().items():
        delta[key] = value.clone()
        rows = base_state[key].shape[0]
        delta[key][:rows] -= base_state[key]
    target.config.save_pretrained(folder)
    if as_bin:
        torch.save(delta, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        keys = sorted(delta)
        halves = {SHARDS[0]: keys[: len(keys) // 2], SHARDS[1]: keys[len(keys) // 2:]}
        for name, names in halves.items():
            save_file({k: delta[k].contiguous() for k in names}, folder / name)
        index = {"metadata": {}, "weight_map": {k: name for name, names in halves.items() for k in names}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("as_bin", [False, True], ids=["sharded-safetensors", "bin"])
def test_apply_delta(as_bin, tiny_llm_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    target = build_tiny_causal_lm(seed=3, vocab_size=BASE_VOCAB + 3)  # LLaVA's delta grows the vocabulary
    (tmp_path / "delta").mkdir()
    write_delta(base, target, tmp_path / "delta", as_bin)
    args = parse(conversion_commands.add_apply_delta_arguments,
                 ["--base", str(tiny_llm_dir), "--delta", str(tmp_path / "delta"), "--out", str(tmp_path / "out")])

    assert conversion_commands.run_apply_delta(args) == 0

    rebuilt = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    for key, value in target.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value)
    shards = sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert shards == (["model.safetensors"] if as_bin else list(SHARDS))


def test_convert_commands_are_registered_as_a_builtin_plugin(llavidal_plugins):
    commands = llavidal_plugins.commands()
    assert {("convert", "legacy"), ("convert", "apply-delta")} <= set(commands)
    assert commands[("convert", "legacy")].run is conversion_commands.run_legacy
