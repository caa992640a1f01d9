"""Legacy conversion: the seed's projector checkpoints (both layouts) and LLaVA deltas, through the commands."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from llavidal_core.commands import conversion as conversion_commands
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


# -- a delta that does not fit its base: every misfit named, nothing written --------------------------------------

def save_delta(state: dict[str, torch.Tensor], folder, shards: list[list[str]], config) -> None:
    """``state`` saved as safetensors ``shards`` (lists of tensor names) with a transformers index, and ``config``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    weight_map = {}
    for number, names in enumerate(shards, start=1):
        file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        save_file({name: state[name].contiguous() for name in names}, folder / file)
        weight_map.update(dict.fromkeys(names, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture
def tiny_delta(tiny_llm_dir):
    """``(state, config)`` of a valid delta for the tiny base: target - base, vocabulary grown by 3 rows."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).state_dict()
    target = build_tiny_causal_lm(seed=3, vocab_size=BASE_VOCAB + 3)
    state = {}
    for key, value in target.state_dict().items():
        state[key] = value.clone()
        state[key][: base[key].shape[0]] -= base[key]
    return state, target.config


def run_apply_delta_cli(tiny_llm_dir, delta, out) -> int:
    from llavidal_core.cli import main

    return main(["convert", "apply-delta", "--base", str(tiny_llm_dir), "--delta", str(delta), "--out", str(out)])


def leftovers(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("change, named", [
    (lambda state: state.pop("model.layers.1.mlp.down_proj.weight"), "missing from the delta"),
    (lambda state: state.update({"model.layers.2.mlp.down_proj.weight": torch.zeros(2, 2)}), "the base lacks"),
    (lambda state: state.update({"model.layers.0.self_attn.q_proj.weight": torch.zeros(33, 32)}), "shape mismatch"),
], ids=["delta-lacks-a-base-tensor", "delta-has-an-unknown-tensor", "shape-mismatch"])
def test_a_delta_that_does_not_fit_is_an_error_naming_the_tensor(change, named, tiny_delta, tiny_llm_dir,
                                                                  tmp_path, capsys, llavidal_plugins):
    state, config = tiny_delta
    change(state)
    keys = sorted(state)
    save_delta(state, tmp_path / "delta", [keys[:5], keys[5:]], config)

    assert run_apply_delta_cli(tiny_llm_dir, tmp_path / "delta", tmp_path / "out") == 1

    err = capsys.readouterr().err
    changed = {"missing": "model.layers.1.mlp.down_proj.weight", "the base": "model.layers.2.mlp.down_proj.weight",
               "shape": "model.layers.0.self_attn.q_proj.weight (base (32, 32), delta (33, 32))"}
    assert named in err and next(v for k, v in changed.items() if named.startswith(k) or k in named) in err
    assert leftovers(tmp_path) == ["delta"]  # no output folder, no staging folder


def test_rows_may_grow_only_in_the_vocabulary_tensors(tiny_delta, tiny_llm_dir, tmp_path, capsys, llavidal_plugins):
    state, config = tiny_delta
    grown = "model.layers.0.mlp.up_proj.weight"
    state[grown] = torch.cat([state[grown], torch.zeros(1, state[grown].shape[1])])
    save_delta(state, tmp_path / "delta", [sorted(state)], config)
    assert run_apply_delta_cli(tiny_llm_dir, tmp_path / "delta", tmp_path / "out") == 1
    assert f"{grown} (base (37, 32), delta (38, 32))" in capsys.readouterr().err


def test_projectors_only_the_delta_has_are_kept(tiny_delta, tiny_llm_dir, tmp_path, capsys, llavidal_plugins):
    from safetensors.torch import load_file

    state, config = tiny_delta
    state["model.mm_projector.weight"] = torch.randn(32, 8)
    state["model.mm_projector_forpose.bias"] = torch.randn(32)
    save_delta(state, tmp_path / "delta", [sorted(state)], config)
    assert run_apply_delta_cli(tiny_llm_dir, tmp_path / "delta", tmp_path / "out") == 0
    written = load_file(tmp_path / "out" / "model.safetensors")
    assert torch.equal(written["model.mm_projector.weight"], state["model.mm_projector.weight"])
    assert "model.mm_projector_forpose.bias" in capsys.readouterr().out


def test_a_failure_while_writing_leaves_no_output_and_an_existing_one_untouched(tiny_delta, tiny_llm_dir, tmp_path):
    """The second shard cannot be written (a file-size limit, as on a full disk): nothing appears at --out."""
    import resource
    import signal
    import subprocess
    import sys

    state, config = tiny_delta
    small = ["model.embed_tokens.weight", "model.norm.weight"]
    save_delta(state, tmp_path / "delta", [small, sorted(set(state) - set(small))], config)
    (tmp_path / "out").mkdir()
    limit = 30_000  # the first shard is ~13 KB, the second ~70 KB

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-B", "-m", "llavidal_core", "convert", "apply-delta", "--base", str(tiny_llm_dir),
         "--delta", str(tmp_path / "delta"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)

    assert result.returncode == 1, result.stderr
    assert "model-00002-of-00002.safetensors: cannot write the weights" in result.stderr
    assert leftovers(tmp_path) == ["delta", "out"] and leftovers(tmp_path / "out") == []


def test_a_non_empty_out_folder_is_refused_and_kept(tiny_delta, tiny_llm_dir, tmp_path, capsys, llavidal_plugins):
    state, config = tiny_delta
    save_delta(state, tmp_path / "delta", [sorted(state)], config)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert run_apply_delta_cli(tiny_llm_dir, tmp_path / "delta", tmp_path / "out") == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert leftovers(tmp_path / "out") == ["notes.txt"]


def test_overwrite_replaces_the_old_output_whole(tiny_delta, tiny_llm_dir, tmp_path):
    from llavidal_core.conversion import apply_delta

    state, config = tiny_delta
    save_delta(state, tmp_path / "delta", [sorted(state)], config)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model-00001-of-00009.safetensors").write_text("a stale shard of an earlier run")
    apply_delta(tiny_llm_dir, tmp_path / "delta", tmp_path / "out", overwrite=True)
    assert leftovers(tmp_path / "out") == ["config.json", "model.safetensors"]
    assert leftovers(tmp_path) == ["delta", "out"]
    with pytest.raises(ConversionError, match="would replace the delta folder"):
        apply_delta(tiny_llm_dir, tmp_path / "delta", tmp_path, overwrite=True)
