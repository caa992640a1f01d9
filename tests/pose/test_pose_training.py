"""PoseCLIP: training on synthetic motions through the recipe and the CLI, zero-shot classification, reuse
of the trained encoder for extraction, and config checking."""

import json
from pathlib import Path

import pytest
import torch

import llavidal_pose.plugin
from llavidal_core.cli import main
from llavidal_core.features import FeatureStore
from llavidal_core.plugins import LlavidalPluginManager, set_plugin_manager
from llavidal_core.testing.tiny_clip_text import save_tiny_clip_text_model
from llavidal_pose.encoder import PoseCueEncoder
from llavidal_pose.synthetic import SYNTHETIC_ACTIONS, write_synthetic_recordings
from llavidal_pose.training import ConfigError, load_config
from llavidal_pose.zero_shot import PoseCLIP

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "recipes" / "poseclip-synthetic.yaml"
SMALL_MODEL = [  # a reduced encoder, so that training fits the test budget; the recipe's default stays 216 wide
    "encoder.width=16", "encoder.num_heads=2", "encoder.depth=2", "encoder.downsample_layers=[1,2]",
    "encoder.num_frames=24", "encoder.num_person=1", "encoder.num_tokens=48", "encoder.embed_dim=32",
]


@pytest.fixture(scope="module", autouse=True)
def pose_commands():
    """One torch thread (the CPU is shared) and a plugin manager holding the pose plugin, for this module."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    manager = LlavidalPluginManager()
    manager.register(llavidal_pose.plugin, name="pose", distribution="llavidal-pose", version="0.1.0")
    previous_manager = set_plugin_manager(manager)
    yield
    set_plugin_manager(previous_manager)
    torch.set_num_threads(previous_threads)


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    return save_tiny_clip_text_model(tmp_path_factory.mktemp("clip-text"), projection_dim=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_text):
    """A PoseCLIP trained for 200 steps by `llavidal pose train` on the synthetic recipe."""
    out = tmp_path_factory.mktemp("runs") / "poseclip"
    overrides = [*SMALL_MODEL, f"output_dir={out}", f"text.model={tiny_text}", "data.train_per_action=32",
                 "training.steps=200", "training.learning_rate=3e-3", "training.warmup_steps=10",
                 "training.device=cpu"]
    code = main(["pose", "train", str(RECIPE), *overrides])
    assert code == 0
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    return out, losses


@pytest.mark.slow
def test_training_lowers_the_loss_and_classifies_held_out_recordings(trained, capsys):
    out, losses = trained
    info = json.loads((out / "poseclip.json").read_text())
    print(f"PoseCLIP synthetic: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
          f"held-out zero-shot accuracy {info['metrics']['eval_zero_shot_accuracy']:.3f}")
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    assert info["metrics"]["eval_zero_shot_accuracy"] >= 0.8
    assert info["actions"] == list(SYNTHETIC_ACTIONS) and info["prompt_template"] == "a person {action}"
    assert json.loads((out / "config.json").read_text())["width"] == 16


@pytest.mark.slow
def test_classify_command_and_api(trained, tmp_path, capsys):
    out, _ = trained
    paths = write_synthetic_recordings(tmp_path / "new", per_action=2, seed=123)
    capsys.readouterr()
    assert main(["pose", "classify", str(tmp_path / "new"), "--model", str(out)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = {str(p): SYNTHETIC_ACTIONS[int(p.name[-12:-9]) - 1] for p in paths}
    assert sorted(r["path"] for r in rows) == sorted(truth)
    assert sum(r["action"] == truth[r["path"]] for r in rows) >= 6
    assert all(len(r["scores"]) == 3 for r in rows)
    assert main(["pose", "classify", str(paths[0]), "--model", str(out), "--actions", "walking,squatting"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] in {"walking", "squatting"}
    (tmp_path / "new" / "broken.skeleton").write_text("1\n1\n")
    assert main(["pose", "classify", str(tmp_path / "new"), "--model", str(out), "--top", "1"]) == 3
    captured = capsys.readouterr()
    assert "broken.skeleton:3: unexpected end of file" in captured.err
    assert len(captured.out.splitlines()) == 8 and all(len(json.loads(r)["scores"]) == 1 for r in captured.out.splitlines())
    model = PoseCLIP.from_pretrained(out)
    probabilities = model.classify(paths[:2])
    assert probabilities.shape == (2, 4) and torch.allclose(probabilities.sum(-1), torch.ones(2))


@pytest.mark.slow
def test_the_trained_encoder_extracts_features(trained, tmp_path):
    out, _ = trained
    write_synthetic_recordings(tmp_path / "in", actions=("waving",), per_action=1)
    assert main(["extract", "pose", str(tmp_path / "in"), "--out", str(tmp_path / "f"), "--model", str(out),
                 "--device", "cpu"]) == 0
    store = FeatureStore(tmp_path / "f")
    assert store.read("S001C001P001R001A001", "pose").shape == (48, 16)  # 6 time steps x 1 body x 8 parts
    metadata = store.metadata("S001C001P001R001A001", "pose")
    assert metadata["encoder"] == str(out) and metadata["random_weights"] == "false"


def test_an_unfrozen_text_tower_is_trained_and_saved_with_the_encoder(tmp_path, tiny_text):
    out = tmp_path / "unfrozen"
    overrides = [*SMALL_MODEL, f"output_dir={out}", f"text.model={tiny_text}", "text.freeze=false",
                 "data.train_per_action=2", "data.eval_per_action=1", "training.steps=2", "training.device=cpu"]
    assert main(["pose", "train", str(RECIPE), *overrides]) == 0
    info = json.loads((out / "poseclip.json").read_text())
    assert info["text_model"] == "text_encoder" and (out / "text_encoder" / "config.json").is_file()
    original = PoseCLIP.from_pretrained(out).text
    assert original.name_or_path == str(out / "text_encoder")
    from transformers import CLIPTextModelWithProjection

    untouched = CLIPTextModelWithProjection.from_pretrained(tiny_text)
    assert not torch.equal(original.model.text_projection.weight, untouched.text_projection.weight)


def test_the_recipes_load_with_the_default_216_wide_encoder():
    recipes = sorted((REPO_ROOT / "recipes").glob("poseclip-*.yaml"))
    assert [r.name for r in recipes] == ["poseclip-ntu120.yaml", "poseclip-synthetic.yaml"]
    for recipe in recipes:
        config = load_config(recipe)
        assert config.encoder["width"] == 216 and config.text.freeze
        encoder = PoseCueEncoder(**config.encoder)
        assert (encoder.spec.num_tokens, encoder.spec.feature_dim, encoder.projection.out_features) == (256, 216, 512)
    assert load_config(RECIPE, ["training.steps=7", "data.actions=[waving, walking]"]).training.steps == 7


def test_config_errors_are_usage_errors(tmp_path, tiny_text, capsys):
    assert main(["pose", "train", str(RECIPE), "training.epochs=3"]) == 2
    assert "section 'training' has unknown keys ['epochs']" in capsys.readouterr().err
    assert main(["pose", "train", str(RECIPE), "steps"]) == 2
    assert "must look like section.key=value" in capsys.readouterr().err
    assert main(["pose", "train", str(RECIPE), "training.steps=many"]) == 2
    assert "section 'training': steps must be an integer, got 'many'" in capsys.readouterr().err
    assert main(["pose", "train", str(RECIPE), "training.batch_size=0"]) == 2
    assert "batch_size must be at least 1, got 0" in capsys.readouterr().err
    assert main(["pose", "train", str(RECIPE), "text.freeze=maybe"]) == 2
    assert "freeze must be true or false, got 'maybe'" in capsys.readouterr().err
    assert main(["pose", "train", str(RECIPE), f"text.model={tiny_text}", f"output_dir={tmp_path}"]) == 2
    assert "encoder.embed_dim is 512 but the text tower" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown data.source 'kinetics'"):
        from llavidal_pose.training import load_data

        load_data(load_config(RECIPE, ["data.source=kinetics"]).data, 0)


def test_manifest_data_with_held_out_actions(tmp_path):
    from llavidal_pose.training import load_data

    paths = write_synthetic_recordings(tmp_path / "rec", actions=("waving", "clapping", "walking"), per_action=1)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"path": f"rec/{p.name}", "action": a}) + "\n"
                                                  for p, a in zip(paths[:2], ("waving", "clapping"))))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"path": str(paths[2]), "action": "walking"}) + "\n")
    overrides = ["data.source=manifest", f"data.train_manifest={tmp_path / 'train.jsonl'}",
                 f"data.eval_manifest={tmp_path / 'eval.jsonl'}"]
    data = load_data(load_config(RECIPE, [*overrides, "data.actions=null"]).data, 0)
    assert data.train_actions == ["clapping", "waving"] and data.train_labels == [1, 0]
    assert data.eval_actions == ["walking"] and data.eval_labels == [0] and len(data.held_out) == 1
    assert data.train[0].source == str(paths[0]) and data.train[0].joints.shape[2:] == (25, 3)
    data = load_data(load_config(RECIPE, overrides).data, 0)  # the recipe's order: waving, ..., clapping
    assert data.train_actions == ["waving", "clapping"] and data.train_labels == [0, 1]
    with pytest.raises(ConfigError, match=r"missing from data.actions: \['walking'\]"):
        load_data(load_config(RECIPE, [*overrides, "data.actions=[waving, clapping]"]).data, 0)
    (tmp_path / "train.jsonl").write_text('{"path": "rec/missing.skeleton"}\n')
    with pytest.raises(ConfigError, match=r"train.jsonl:1: expected a JSON object with 'path' and 'action'"):
        load_data(load_config(RECIPE, overrides).data, 0)


def test_actions_the_text_tower_cannot_tell_apart_are_refused_before_training(tmp_path, tiny_text, capsys):
    """Words missing from the tokenizer all become its unknown token: two such prompts are the same text."""
    paths = write_synthetic_recordings(tmp_path / "rec", actions=("waving", "clapping"), per_action=1)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"rec/{p.name}", "action": a}) + "\n"
                                for p, a in zip(paths, ("gardening", "skydiving"))))
    overrides = [*SMALL_MODEL, f"output_dir={tmp_path / 'out'}", f"text.model={tiny_text}", "data.source=manifest",
                 f"data.train_manifest={manifest}", f"data.eval_manifest={manifest}", "data.actions=null",
                 "training.steps=1", "training.device=cpu"]
    assert main(["pose", "train", str(RECIPE), *overrides]) == 2
    error = capsys.readouterr().err
    assert "reads the prompts 'a person gardening' and 'a person skydiving' as the same tokens" in error
    assert not (tmp_path / "out").exists()


def test_prompts_with_known_words_are_distinct(tiny_text):
    from llavidal_pose.text import ActionTextEncoder, action_prompts

    text = ActionTextEncoder.from_pretrained(str(tiny_text))
    assert text.indistinct_prompts(action_prompts(["sitting_down", "standing_up", "waving"])) == []
    clashes = text.indistinct_prompts(["a person gardening", "a person skydiving", "a person gardening"])
    assert [(a, b) for a, b, _ in clashes] == [("a person gardening", "a person skydiving")]
