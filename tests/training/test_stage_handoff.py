"""The MMPro hand-off: a stage starts from the projectors and cue-token rows that earlier stages trained."""

import pytest
import torch

from llavidal_core.testing.tiny_fusion import TINY_CUES, build_tiny_llavidal
from llavidal_core.training.model_setup import copy_stage_weights


def rows_of(model, cue):
    ids = [i for i in model.config.cue_token_ids[cue].values() if i is not None]
    return model.get_input_embeddings().weight[ids], model.get_output_embeddings().weight[ids]


@pytest.mark.parametrize("saved_as", ["adapter", "full"])
def test_copy_takes_only_the_cues_the_stage_trained(tmp_path, saved_as):
    trained, processor = build_tiny_llavidal(seed=1)
    with torch.no_grad():
        for parameter in trained.projectors.parameters():
            parameter.add_(1.0)
        trained.get_input_embeddings().weight.add_(1.0)
        trained.get_output_embeddings().weight.add_(1.0)
    if saved_as == "adapter":
        trained.save_adapter(tmp_path / "stage", processor)
    else:
        trained.save_pretrained(tmp_path / "stage", processor=processor)

    fresh, _ = build_tiny_llavidal(seed=2)
    before_pose = [t.clone() for t in rows_of(fresh, "pose")]
    before_base_row = fresh.get_input_embeddings().weight[5].clone()
    pose_projector = fresh.projectors["pose"].weight.clone()
    copy_stage_weights(fresh, tmp_path / "stage", ["video", "object"])

    for cue in ("video", "object"):
        assert torch.equal(fresh.projectors[cue].weight, trained.projectors[cue].weight)
        assert torch.equal(fresh.projectors[cue].bias, trained.projectors[cue].bias)
        for got, want in zip(rows_of(fresh, cue), rows_of(trained, cue)):
            assert torch.equal(got, want)
    assert torch.equal(fresh.projectors["pose"].weight, pose_projector)
    for got, want in zip(rows_of(fresh, "pose"), before_pose):
        assert torch.equal(got, want)
    assert torch.equal(fresh.get_input_embeddings().weight[5], before_base_row)


def test_a_stage_folder_without_weights_is_an_error(tmp_path):
    from llavidal_core.errors import LlavidalError

    model, _ = build_tiny_llavidal()
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlavidalError, match="neither a saved model nor an adapter"):
        copy_stage_weights(model, tmp_path / "empty", ["video"])


def test_the_lm_weights_come_from_a_full_save_with_every_row(tmp_path):
    from llavidal_core.training.model_setup import copy_language_model_weights

    trained, processor = build_tiny_llavidal(seed=1)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(1.0)
    trained.save_pretrained(tmp_path / "stage", processor=processor)

    fresh, _ = build_tiny_llavidal(seed=2)
    projector = fresh.projectors["video"].weight.clone()
    copy_language_model_weights(fresh, tmp_path / "stage")

    for (name, got), (_, want) in zip(fresh.language_model.named_parameters(), trained.language_model.named_parameters()):
        assert torch.equal(got, want), name
    assert torch.equal(fresh.projectors["video"].weight, projector)  # projectors are copy_stage_weights' job


def test_the_lm_of_a_model_with_other_cues_is_refused_with_both_shapes(tmp_path):
    from llavidal_core.errors import LlavidalError
    from llavidal_core.training.model_setup import copy_language_model_weights

    trained, processor = build_tiny_llavidal(cues=TINY_CUES[:1])
    trained.save_pretrained(tmp_path / "stage", processor=processor)
    fresh, _ = build_tiny_llavidal()
    with pytest.raises(LlavidalError, match=r"embed_tokens.weight has shape \(\d+, 32\), the model's is"):
        copy_language_model_weights(fresh, tmp_path / "stage")


@pytest.mark.parametrize(("trainable", "lora", "save", "hands_on"), [
    (["llm", "projectors"], None, "full", True),
    (["projectors", "embeddings"], {"r": 4}, "full", True),
    (["projectors", "embeddings"], None, "full", False),
    (["projectors", "embeddings"], None, "adapter", False),
    (["projectors", "embeddings"], {"r": 4}, "adapter", True),  # its lora/ merges into the next stage's LM
    (["projectors", "embeddings"], {"r": 4}, None, True),
    (["llm", "projectors"], None, "both", True),
])
def test_which_stages_hand_on_their_lm(trainable, lora, save, hands_on):
    from llavidal_core.training.model_setup import stage_trained_language_model
    from llavidal_core.training.recipe import LoraSection, TrainSection

    train = TrainSection(trainable=trainable, lora=LoraSection(**lora) if lora else None, save=save)
    assert stage_trained_language_model(train) is hands_on


def test_the_lm_of_another_architecture_is_refused_naming_the_missing_weight(tmp_path):
    from llavidal_core.errors import LlavidalError
    from llavidal_core.training.model_setup import copy_language_model_weights

    shallow, processor = build_tiny_llavidal(num_hidden_layers=1)
    shallow.save_pretrained(tmp_path / "stage", processor=processor)
    deep, _ = build_tiny_llavidal()
    with pytest.raises(LlavidalError, match=r"stage: no language_model\.model\.layers\.1\..* to start the LM from"):
        copy_language_model_weights(deep, tmp_path / "stage")


def test_the_lm_comes_from_an_adapter_save_s_lora_merged(tmp_path):
    """A LoRA stage saved as an adapter hands on its LM as ``lora/`` merged into the next stage's LM."""
    peft = pytest.importorskip("peft")
    from llavidal_core.training.model_setup import copy_language_model_weights

    trained, processor = build_tiny_llavidal(seed=1)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trained.language_model = peft.get_peft_model(trained.language_model, config)
    trained.save_adapter(tmp_path / "stage", processor)
    assert (tmp_path / "stage" / "lora" / "adapter_config.json").is_file()
    want = trained.language_model.merge_and_unload()

    fresh, _ = build_tiny_llavidal(seed=1)
    before = fresh.language_model.get_parameter("model.layers.0.self_attn.q_proj.weight").clone()
    copy_language_model_weights(fresh, tmp_path / "stage")
    assert not any("lora" in name for name, _ in fresh.named_parameters())
    assert not torch.equal(fresh.language_model.get_parameter("model.layers.0.self_attn.q_proj.weight"), before)
    for (name, got), (_, expected) in zip(fresh.language_model.named_parameters(), want.named_parameters()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
