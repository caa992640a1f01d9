"""Recipes: YAML into typed sections, ``key=value`` overrides, stage plans, and errors that name the key."""

from pathlib import Path

import pytest

from llavidal_core.training.recipe import RecipeError, apply_override, load_recipe, recipe_from_dict

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def minimal(**sections):
    raw = {"output_dir": "out", "model": {"base": "lm"}, "cues": [{"name": "video", "features": "f"}]}
    raw.update(sections)
    return raw


def test_the_shipped_recipes_load_typed():
    recipe = load_recipe(RECIPES / "llavidal-7b-mmpro.yaml")
    assert [cue.name for cue in recipe.cues] == ["video", "object", "pose"]
    assert recipe.train.learning_rate == pytest.approx(2e-5)
    assert recipe.train.precision == "bf16"
    plans = recipe.stage_plans()
    assert [plan.name for plan in plans] == ["video", "object", "pose", "video_pose", "video_object_pose"]
    assert plans[3].init_from == ["video", "pose"] and plans[3].output_dir == Path("runs/llavidal-7b-mmpro/video_pose")
    for name in ("llavidal-7b-video.yaml", "tiny-llavidal.yaml", "tiny-llavidal-mmpro.yaml"):
        assert load_recipe(RECIPES / name).stage_plans()


def test_overrides_by_dotted_path_list_index_and_item_name():
    recipe = load_recipe(RECIPES / "llavidal-7b-mmpro.yaml", [
        "train.learning_rate=1e-4",            # YAML 1.1 reads this as a string; still a float
        "cues.0.dropout=0.25",
        "cues.pose.features=/data/pose",
        "stages.video_pose.train.epochs=2",
        "train.trainable=[projectors]",
        "train.lora={r: 4}",
        "train.save=full",
    ])
    assert recipe.train.learning_rate == pytest.approx(1e-4)
    assert recipe.cue("video").dropout == 0.25
    assert recipe.cue("pose").features == "/data/pose"
    assert recipe.train.lora.r == 4 and recipe.train.lora.target_modules == ["q_proj", "v_proj"]
    plans = {plan.name: plan for plan in recipe.stage_plans()}
    assert plans["video_pose"].train.epochs == 2 and plans["video"].train.epochs == 1
    assert plans["video_pose"].train.learning_rate == pytest.approx(1e-4)


@pytest.mark.parametrize("override, message", [
    ("train.learnig_rate=1", "unknown key 'train.learnig_rate' (did you mean 'learning_rate'?)"),
    ("train.batch_size=four", "train.batch_size must be an integer, got 'four'"),
    ("train.precision=fp8", "train.precision must be one of ['fp32', 'bf16', 'fp16']"),
    ("train.trainable=[llm, vision]", "train.trainable: unknown parts ['vision']"),
    ("data.missing_cue=skip", "data.missing_cue must be one of ['drop', 'zeros']"),
    ("cues.audio.features=x", "override cues.audio: no item named 'audio'"),
    ("cues.7.features=x", "index 7 is out of range"),
    ("train.learning_rate", "is not key=value"),
    ("stages.1.init_from=[video_pose]", "stages.1.init_from: 'video_pose' is not an earlier stage"),
    ("stages.0.cues=[audio]", "stages.0.cues must name some of the recipe's cues"),
])
def test_bad_values_name_their_key(override, message):
    with pytest.raises(RecipeError) as error:
        load_recipe(RECIPES / "llavidal-7b-mmpro.yaml", [override])
    assert message in str(error.value)


def test_required_keys_and_sections():
    with pytest.raises(RecipeError, match="missing required key 'output_dir'"):
        recipe_from_dict({"model": {"base": "x"}, "cues": [{"name": "video"}]})
    with pytest.raises(RecipeError, match="model needs 'base'"):
        recipe_from_dict(minimal(model={}))
    with pytest.raises(RecipeError, match="needs a 'model_type'"):
        recipe_from_dict(minimal(model={"base_config": {"hidden_size": 8}}))
    with pytest.raises(RecipeError, match="cues.0.dropout must be in"):
        recipe_from_dict(minimal(cues=[{"name": "video", "dropout": 1.5}]))
    with pytest.raises(RecipeError, match="listed more than once"):
        recipe_from_dict(minimal(cues=[{"name": "video"}, {"name": "video"}]))
    with pytest.raises(RecipeError, match="cues.0 must be a mapping"):
        recipe_from_dict(minimal(cues=["video"]))


def test_override_creates_missing_sections_and_a_recipe_without_stages_has_one():
    raw = minimal()
    apply_override(raw, "train.lora.r=16")
    apply_override(raw, "data.train=train.json")
    recipe = recipe_from_dict(raw)
    assert recipe.train.lora.r == 16
    (plan,) = recipe.stage_plans()
    assert plan.name == "main" and plan.cues == ["video"] and plan.output_dir == Path("out")


def test_a_missing_or_broken_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")


def test_the_train_command_and_recipes_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, llavidal_core.commands.training, llavidal_core.training.recipe, llavidal_core.training; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"LLAVIDAL_LOAD_PLUGINS": "", "PATH": ""}, timeout=60)
    assert result.returncode == 0, result.stderr


# -- nothing leaves the machine unless the recipe's own fields say so ----------------------------------------------

RECIPE_WITH_TRAINER_ARGS = """\
output_dir: runs/x
model: {{base: lm}}
cues: [{{name: video, features: f}}]
train:
  trainer_args:
    fsdp: full_shard
    {key}: {value}
"""


@pytest.mark.parametrize("key, value, field", [
    ("push_to_hub", "true", "train.hub"),
    ("hub_model_id", "someone-else/their-repo", "train.hub"),
    ("hub_token", "hf_secret", "train.hub"),
    ("hub_strategy", "every_save", "train.hub"),
    ("hub_private_repo", "false", "train.hub"),
    ("hub_always_push", "true", "train.hub"),
    ("push_to_hub_model_id", "x", "train.hub"),
    ("report_to", "wandb", "train.report_to"),
    ("trackio_space_id", "org/space", "train.report_to"),
])
def test_trainer_args_refuse_upload_and_reporting_keys(key, value, field, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE_WITH_TRAINER_ARGS.format(key=key, value=value))
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert f"train.trainer_args.{key}: uploading and reporting are not passed through trainer_args" in str(error.value)
    assert f"with {field}" in str(error.value) and str(path) in str(error.value)


def test_trainer_args_refuse_keys_a_recipe_field_sets():
    with pytest.raises(RecipeError, match="train.trainer_args.learning_rate: the recipe sets this from "
                                          "train.learning_rate; set that instead"):
        load_recipe(RECIPES / "tiny-llavidal.yaml", ["train.trainer_args={learning_rate: 0.1}"])
    with pytest.raises(RecipeError, match=r"stages.video_pose.train.trainer_args.push_to_hub: uploading"):
        load_recipe(RECIPES / "llavidal-7b-mmpro.yaml", ["stages.video_pose.train.trainer_args.push_to_hub=true"])


def test_other_trainer_args_still_pass(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE_WITH_TRAINER_ARGS.format(key="ddp_timeout", value="600"))
    assert load_recipe(path).train.trainer_args == {"fsdp": "full_shard", "ddp_timeout": 600}


def test_uploading_is_an_explicit_hub_section_per_stage():
    recipe = load_recipe(RECIPES / "tiny-llavidal.yaml", ["train.hub={repo_id: me/tiny-llavidal}"])
    assert recipe.train.hub.private and recipe.train.hub.strategy == "end"
    assert recipe.train.hub.training_arguments() == {
        "push_to_hub": True, "hub_model_id": "me/tiny-llavidal", "hub_private_repo": True, "hub_strategy": "end",
        "hub_revision": None}
    assert load_recipe(RECIPES / "tiny-llavidal.yaml").train.hub is None  # off unless asked for
    with pytest.raises(RecipeError, match="train.hub.repo_id must be 'org/name'"):
        load_recipe(RECIPES / "tiny-llavidal.yaml", ["train.hub={repo_id: tiny}"])
    with pytest.raises(RecipeError, match="stages 'video' and 'object' would both push to me/m"):
        load_recipe(RECIPES / "llavidal-7b-mmpro.yaml", ["train.hub={repo_id: me/m}"])
    recipe = load_recipe(RECIPES / "llavidal-7b-mmpro.yaml", ["stages.video_object_pose.train.hub={repo_id: me/m}"])
    assert [plan.train.hub and plan.train.hub.repo_id for plan in recipe.stage_plans()] == [None] * 4 + ["me/m"]


def test_report_to_is_a_recipe_field():
    recipe = load_recipe(RECIPES / "tiny-llavidal.yaml", ["train.report_to=[wandb]"])
    assert recipe.train.report_to == ["wandb"]
    assert load_recipe(RECIPES / "tiny-llavidal.yaml").train.report_to is None


def test_hub_arguments_are_training_arguments_fields(tmp_path):
    from transformers import TrainingArguments

    hub = load_recipe(RECIPES / "tiny-llavidal.yaml", ["train.hub={repo_id: me/m, revision: dev}"]).train.hub
    arguments = TrainingArguments(output_dir=str(tmp_path), **hub.training_arguments())
    assert arguments.push_to_hub and arguments.hub_model_id == "me/m" and arguments.hub_revision == "dev"


def test_the_runner_uploads_only_what_the_recipe_s_hub_section_says(tmp_path):
    from llavidal_core.training.runner import training_arguments

    plain = load_recipe(RECIPES / "tiny-llavidal.yaml", [f"output_dir={tmp_path}"]).stage_plans()[0]
    arguments = training_arguments(plain)
    assert not arguments.push_to_hub and arguments.hub_model_id is None
    pushed = load_recipe(RECIPES / "tiny-llavidal.yaml", [f"output_dir={tmp_path}", "train.hub={repo_id: me/m}",
                                                          "train.report_to=[none]"]).stage_plans()[0]
    arguments = training_arguments(pushed)
    assert arguments.push_to_hub and arguments.hub_model_id == "me/m" and arguments.hub_private_repo
    assert arguments.report_to in ([], ["none"], "none")
