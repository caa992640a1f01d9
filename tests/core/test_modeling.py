"""The fusion head: the splice, the count check, loss, generation, dtypes, freezing, the paper-size model."""

from __future__ import annotations

import pytest
import torch

from llavidal_core.modeling import LlavidalConfig, LlavidalForConditionalGeneration
from llavidal_core.testing.tiny_fusion import (
    TINY_CUES,
    TINY_OBJECT,
    TINY_POSE,
    TINY_VIDEO,
    build_tiny_llavidal,
    random_cue_features,
)

QUESTION = "What is the person doing in the video?"
ANSWER = "The person drinks water from a cup"


def conversation(placeholders: str, answer: str | None = ANSWER):
    turns = [{"from": "human", "value": f"{placeholders}\n{QUESTION}"}]
    if answer is not None:
        turns.append({"from": "gpt", "value": answer})
    return turns


def sample_features(cues, present: dict[str, int | None], seed: int):
    """Features for the cues in ``present`` (value: number of objects for variable cues)."""
    specs = {spec.name: spec for spec in cues}
    return {name: random_cue_features(specs[name], items, seed=seed + i) for i, (name, items) in enumerate(present.items())}


def placeholders_for(cues, present) -> str:
    return "".join(spec.placeholder for spec in cues if spec.name in present)


def captured_lm_embeddings(model, batch):
    """Run the model and return the ``inputs_embeds`` its LM received."""
    seen = {}

    def grab(module, args, kwargs):
        seen["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

    handle = model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    return seen["inputs_embeds"]


@torch.no_grad()
def reference_splice(model, input_ids, per_sample_features):
    """The splice written out sample by sample, position by position (no masked_scatter)."""
    embeds = model.get_input_embeddings()(input_ids).clone()
    for row, features in enumerate(per_sample_features):
        for cue, tensor in features.items():
            patch_id = model.config.cue_token_ids[cue]["patch"]
            projected = model.projectors[cue](tensor.reshape(-1, tensor.shape[-1]))
            positions = (input_ids[row] == patch_id).nonzero().flatten().tolist()
            assert len(positions) == projected.shape[0]
            for k, position in enumerate(positions):
                embeds[row, position] = projected[k]
    return embeds


BATCHES = {
    "one cue": ((TINY_VIDEO,), [{"video": None}, {}, {"video": None}]),
    "two cues": ((TINY_VIDEO, TINY_POSE), [{"video": None, "pose": None}, {"pose": None}, {"video": None}]),
    "three cues": (TINY_CUES, [{"video": None, "object": 2, "pose": None}, {"object": 1}, {"video": None, "pose": None},
                               {"video": None, "object": 3}]),
}


@pytest.mark.parametrize("name", list(BATCHES))
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_lm_receives_the_reference_splice(name, padding_side):
    cues, presence = BATCHES[name]
    model, processor = build_tiny_llavidal(cues)
    per_sample = [sample_features(cues, present, seed=10 * i) for i, present in enumerate(presence)]
    conversations = [conversation(placeholders_for(cues, present)) for present in presence]
    batch = processor(conversations, per_sample, padding_side=padding_side)

    spliced = captured_lm_embeddings(model, batch)

    expected = reference_splice(model, batch["input_ids"], per_sample)
    torch.testing.assert_close(spliced, expected)  # projecting rows in one batch vs per sample: float noise only
    for cue in model.config.cue_names:  # every patch position was overwritten by a feature row
        patch_rows = batch["input_ids"] == model.config.cue_token_ids[cue]["patch"]
        raw = model.get_input_embeddings().weight[model.config.cue_token_ids[cue]["patch"]]
        assert not (spliced[patch_rows] == raw).all(-1).any()


def test_feature_rows_must_match_patch_positions_per_cue():
    model, processor = build_tiny_llavidal()
    features = {"video": random_cue_features(TINY_VIDEO), "pose": random_cue_features(TINY_POSE)}
    batch = processor([conversation("<video><human_pose>")], [features])
    batch["cue_features"]["pose"] = batch["cue_features"]["pose"][:, :-1]

    with pytest.raises(ValueError, match=r"cue 'pose': the input has 3 <pose_patch> positions but 2 unmasked feature rows"):
        model(**batch)


def test_features_for_an_unknown_cue_or_missing_features_are_errors():
    model, processor = build_tiny_llavidal((TINY_VIDEO,))
    batch = processor([conversation("<video>")], [{"video": random_cue_features(TINY_VIDEO)}])
    with pytest.raises(ValueError, match=r"unknown cues \['pose'\]"):
        model(**{**batch, "cue_features": {**batch["cue_features"], "pose": torch.zeros(1, 3, 7)}})
    with pytest.raises(ValueError, match=r"cue 'video': the input has 5 <vid_patch> positions but no features"):
        model(**{**batch, "cue_features": {}})


def test_loss_is_cross_entropy_on_answer_tokens_only():
    model, processor = build_tiny_llavidal()
    features = [{"video": random_cue_features(TINY_VIDEO)}, {"object": random_cue_features(TINY_OBJECT, 2)}]
    batch = processor([conversation("<video>"), conversation("<object>", "a cup")], features)

    output = model(**batch)

    logits = output.logits[:, :-1].reshape(-1, output.logits.shape[-1])
    targets = batch["labels"][:, 1:].reshape(-1)
    kept = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[kept], targets[kept])
    torch.testing.assert_close(output.loss, expected)
    answer_ids = processor.tokenizer("a cup</s>", add_special_tokens=False)["input_ids"]
    assert batch["labels"][1][batch["labels"][1] != -100].tolist() == answer_ids


def test_batched_left_padded_generation_matches_one_by_one():
    model, processor = build_tiny_llavidal()
    presence = [{"video": None, "object": 2, "pose": None}, {"pose": None}, {"object": 1}]
    per_sample = [sample_features(TINY_CUES, present, seed=3 * i) for i, present in enumerate(presence)]
    prompts = [conversation(placeholders_for(TINY_CUES, present), answer=None) for present in presence]
    settings = dict(max_new_tokens=6, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)

    batch = processor(prompts, per_sample, add_generation_prompt=True)
    assert (batch["attention_mask"][:, -1] == 1).all() and (batch["attention_mask"][:, 0] == 0).any()
    batched = model.generate(**batch, **settings)[:, batch["input_ids"].shape[1]:]

    for row, (prompt, features) in enumerate(zip(prompts, per_sample)):
        single = processor([prompt], [features], add_generation_prompt=True)
        alone = model.generate(**single, **settings)[0, single["input_ids"].shape[1]:]
        assert batched[row].tolist() == alone.tolist()


def test_generation_uses_cue_features_at_prefill_only():
    model, processor = build_tiny_llavidal((TINY_VIDEO,))
    batch = processor([conversation("<video>", answer=None)], [{"video": random_cue_features(TINY_VIDEO)}],
                      add_generation_prompt=True)
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append("cue_features" in kwargs), with_kwargs=True)
    model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    assert calls == [True, False, False]


def test_bf16_forward_on_cpu():
    model, processor = build_tiny_llavidal()
    model = model.to(torch.bfloat16)
    features = [{"video": random_cue_features(TINY_VIDEO), "object": random_cue_features(TINY_OBJECT, 1)}]
    batch = processor([conversation("<video><object>")], features)  # float32 features: cast on the way in

    output = model(**batch)

    assert output.logits.dtype == torch.bfloat16
    assert torch.isfinite(output.loss)


def trained_parameters(model, processor, parts):
    """Set ``parts`` trainable, run one backward pass; the names of the parameters that got a nonzero grad."""
    model.set_trainable(parts)
    model.train()
    model.zero_grad()
    features = [{"video": random_cue_features(TINY_VIDEO), "pose": random_cue_features(TINY_POSE)}]
    batch = processor([conversation("<video><human_pose>")], features)
    model(**batch).loss.backward()
    return {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.fixture
def tiny_fusion():
    return build_tiny_llavidal()


def test_gradients_reach_only_the_trainable_parts(tiny_fusion):
    model, processor = tiny_fusion

    projectors_only = trained_parameters(model, processor, {"projectors"})
    assert projectors_only and all(name.startswith("projectors.") for name in projectors_only)
    assert not any(name.startswith("projectors.object") for name in projectors_only)  # no object rows here

    llm_only = trained_parameters(model, processor, {"llm"})
    assert llm_only and all(name.startswith("language_model.") for name in llm_only)

    model.set_trainable({"llm", "projectors"})
    model.freeze("llm")
    assert model.trainable_parts == {"projectors"}
    assert not any(p.requires_grad for p in model.language_model.parameters())
    with pytest.raises(ValueError, match="unknown trainable parts"):
        model.set_trainable({"vision"})


def test_embeddings_part_trains_only_the_cue_token_rows(tiny_fusion):
    model, processor = tiny_fusion
    new_ids = model.config.new_token_ids
    input_weight = model.get_input_embeddings().weight
    output_weight = model.get_output_embeddings().weight
    before = (input_weight.detach().clone(), output_weight.detach().clone())

    trained = trained_parameters(model, processor, {"embeddings"})

    assert trained == {"language_model.model.embed_tokens.weight", "language_model.lm_head.weight"}
    base_rows = torch.ones(input_weight.shape[0], dtype=torch.bool)
    base_rows[new_ids] = False
    assert input_weight.grad[base_rows].abs().sum() == 0 and output_weight.grad[base_rows].abs().sum() == 0
    assert input_weight.grad[new_ids].abs().sum() > 0 and output_weight.grad[new_ids].abs().sum() > 0
    torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    for weight, old in zip((input_weight, output_weight), before):
        assert torch.equal(weight.detach()[base_rows], old[base_rows])
        assert not torch.equal(weight.detach()[new_ids], old[new_ids])


def test_embedding_mask_follows_a_resize(tiny_fusion):
    model, processor = tiny_fusion
    model.set_trainable({"embeddings"})
    model.resize_token_embeddings(model.config.vocab_size + 4)
    assert model.get_input_embeddings().weight.shape[0] == model.config.text_config.vocab_size == 112
    model.train()
    features = [{"video": random_cue_features(TINY_VIDEO)}]
    model(**processor([conversation("<video>")], features)).loss.backward()
    weight = model.get_input_embeddings().weight
    changed_rows = (weight.grad.abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert changed_rows and set(changed_rows) <= set(model.config.new_token_ids)


def test_new_start_end_rows_start_at_the_mean_of_the_base_rows():
    model, _ = build_tiny_llavidal()
    weight = model.get_input_embeddings().weight.detach()
    mean = weight[:99].mean(0)
    for ids in model.config.cue_token_ids.values():
        torch.testing.assert_close(weight[ids["start"]], mean)
        torch.testing.assert_close(weight[ids["end"]], mean)


def test_paper_size_model_on_the_meta_device():
    from transformers import LlamaConfig

    from llavidal_core.cue_tokens import cue_token_ids_for_appended_rows
    from llavidal_core.seed_cues import LLAVIDAL_CUES

    token_ids = cue_token_ids_for_appended_rows(LLAVIDAL_CUES, use_start_end=True, first_id=32003)
    text_config = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                              vocab_size=32012)
    config = LlavidalConfig(text_config=text_config, cues=list(LLAVIDAL_CUES), cue_token_ids=token_ids)
    with torch.device("meta"):
        model = LlavidalForConditionalGeneration(config)

    llama_7b = 6_738_415_616  # LLaMA-7B at its 32000-token vocabulary
    added_rows = 12 * 4096 * 2  # 3 LLaVA tokens + 9 cue tokens, input and output embeddings
    projectors = (1024 + 216 + 512) * 4096 + 3 * 4096
    assert sum(p.numel() for p in model.parameters()) == llama_7b + added_rows + projectors
    shapes = {name: tuple(projector.weight.shape) for name, projector in model.projectors.items()}
    assert shapes == {"video": (4096, 1024), "object": (4096, 512), "pose": (4096, 216)}
    assert token_ids["video"] == {"patch": 32003, "start": 32006, "end": 32007}
    assert token_ids["pose"] == {"patch": 32005, "start": 32010, "end": 32011}


def test_wrapping_a_language_model_with_its_tokenizer(tiny_llm):
    language_model, tokenizer = tiny_llm
    base_rows = language_model.get_input_embeddings().weight.detach().clone()

    model = LlavidalForConditionalGeneration.from_language_model(language_model, TINY_CUES, tokenizer)

    assert len(tokenizer) == 108 and model.config.text_config.vocab_size == 108
    assert model.config.cue_token_ids["pose"] == {"patch": 101, "start": 106, "end": 107}
    assert model.config.base_model_name_or_path == language_model.config.name_or_path
    assert model.language_model is language_model
    assert torch.equal(model.get_input_embeddings().weight.detach()[:99], base_rows)  # the base rows are untouched


@pytest.mark.parametrize("options", [dict(num_beams=3), dict(num_beams=3, num_return_sequences=2),
                                     dict(do_sample=True, num_return_sequences=2, top_k=5)])
def test_beam_search_and_several_sequences_expand_every_cue(options):
    model, processor = build_tiny_llavidal()
    presence = [{"video": None, "object": 2, "pose": None}, {"object": 1, "pose": None}]
    per_sample = [sample_features(TINY_CUES, present, seed=5 * i) for i, present in enumerate(presence)]
    prompts = [conversation(placeholders_for(TINY_CUES, present), answer=None) for present in presence]
    batch = processor(prompts, per_sample, add_generation_prompt=True)
    settings = dict(max_new_tokens=5, pad_token_id=processor.tokenizer.pad_token_id, **options)
    if not settings.get("do_sample"):
        settings["do_sample"] = False

    torch.manual_seed(0)
    fused = model.generate(**batch, **settings)[:, batch["input_ids"].shape[1]:]

    with torch.no_grad():  # the same search on embeddings spliced by hand: what the expansion must reproduce
        embeds = model.embed_inputs(batch["input_ids"], batch["cue_features"], batch.get("cue_feature_masks"))
    torch.manual_seed(0)
    by_hand = model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **settings)
    sequences = 2 * options.get("num_return_sequences", 1)
    assert fused.shape[0] == by_hand.shape[0] == sequences
    assert fused.tolist() == by_hand.tolist()


def test_beam_search_with_the_rows_of_several_samples_in_one_tensor():
    model, processor = build_tiny_llavidal((TINY_VIDEO,))
    features = [{"video": random_cue_features(TINY_VIDEO, seed=i)} for i in range(2)]
    batch = processor([conversation("<video>", answer=None)] * 2, features, add_generation_prompt=True)
    settings = dict(max_new_tokens=4, do_sample=False, num_beams=2, num_return_sequences=2,
                    pad_token_id=processor.tokenizer.pad_token_id)
    prefills = []  # the embeddings each beam starts from: the features must follow their own sample
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: prefills.append(kwargs["inputs_embeds"].clone())
        if kwargs["inputs_embeds"].shape[1] > 1 else None, with_kwargs=True)
    stacked = model.generate(**batch, **settings)
    flat = {"video": batch["cue_features"]["video"].reshape(-1, TINY_VIDEO.feature_dim)}  # reading order
    assert torch.equal(model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      cue_features=flat, **settings), stacked)
    hook.remove()
    assert len(prefills) == 2 and prefills[0].shape[0] == 4
    assert not torch.equal(prefills[0][0], prefills[0][2])  # the two samples differ, so a mix-up would show
    assert torch.equal(prefills[1], prefills[0])
