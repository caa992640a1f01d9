"""Features handed to the processor and the model: NaN/inf refused naming the cue and sample; numpy accepted."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from llavidal_core.finite import NonFiniteError
from llavidal_core.testing.tiny_fusion import TINY_CUES, build_tiny_llavidal, random_cue_features

PROMPT = "<video><object><human_pose>\nWhat is the person doing in the video?"


def conversation(answer: str | None = "The person drinks water."):
    turns = [{"from": "human", "value": PROMPT}]
    if answer is not None:
        turns.append({"from": "gpt", "value": answer})
    return turns


def sample_features(seed: int, num_objects: int = 2) -> dict[str, torch.Tensor]:
    video, obj, pose = TINY_CUES
    return {"video": random_cue_features(video, seed=seed),
            "object": random_cue_features(obj, num_objects, seed=seed + 1).reshape(num_objects, 2, obj.feature_dim),
            "pose": random_cue_features(pose, seed=seed + 2)}


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llavidal()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_the_processor_refuses_non_finite_features_naming_the_sample_and_cue(tiny, bad):
    _, processor = tiny
    features = [sample_features(0), sample_features(3)]
    features[1]["pose"][2, 4] = bad
    with pytest.raises(NonFiniteError, match=r"sample 1: cue 'pose': features: 1 of 21 values are not finite"):
        processor([conversation(), conversation()], features)


def test_the_model_refuses_non_finite_features_naming_the_cue_and_sample(tiny):
    model, processor = tiny
    batch = processor([conversation(), conversation()], [sample_features(0), sample_features(3)])
    batch["cue_features"]["video"][1, 2, 0] = float("nan")  # features given to the model directly (MCQ, pipeline)
    with pytest.raises(NonFiniteError, match=r"cue 'video': features of sample 1: 1 of 60 values are not finite"):
        model(**batch)


def test_generation_refuses_non_finite_features_instead_of_answering_nothing(tiny):
    model, processor = tiny
    batch = processor([conversation(None)], [sample_features(0)], add_generation_prompt=True)
    batch["cue_features"]["object"][0, 1, 3] = float("inf")
    with pytest.raises(NonFiniteError, match=r"cue 'object': features of sample 0"):
        model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)


def test_numpy_features_give_the_same_batch_and_logits_as_tensors(tiny):
    model, processor = tiny
    tensors = [sample_features(0), sample_features(5, num_objects=1)]
    arrays = [{cue: tensor.numpy() for cue, tensor in features.items()} for features in tensors]
    from_tensors = processor([conversation(), conversation()], tensors)
    from_arrays = processor([conversation(), conversation()], arrays)
    assert torch.equal(from_tensors["input_ids"], from_arrays["input_ids"])
    for cue in from_tensors["cue_features"]:
        assert torch.equal(from_tensors["cue_features"][cue], from_arrays["cue_features"][cue])

    numpy_to_model = dict(from_tensors,
                          cue_features={cue: t.numpy() for cue, t in from_tensors["cue_features"].items()},
                          cue_feature_masks={cue: m.numpy() for cue, m in from_tensors["cue_feature_masks"].items()})
    with torch.no_grad():
        torch.testing.assert_close(model(**numpy_to_model).logits, model(**from_tensors).logits, rtol=0, atol=0)


def test_features_of_another_type_are_a_type_error_naming_the_cue(tiny):
    model, processor = tiny
    features = sample_features(0)
    as_lists = dict(features, video=features["video"].tolist())
    with pytest.raises(TypeError, match=r"sample 0: cue 'video': features: expected a torch.Tensor or a numpy.ndarray, "
                                        r"got builtins.list"):
        processor([conversation()], [as_lists])
    batch = processor([conversation()], [features])
    batch["cue_features"]["pose"] = batch["cue_features"]["pose"].tolist()
    with pytest.raises(TypeError, match=r"cue 'pose': features: expected a torch.Tensor"):
        model(**batch)


def test_standardisation_statistics_with_nan_are_refused_naming_the_cue():
    from llavidal_core.modeling.standardize import feature_statistics

    cues = (dataclasses.replace(TINY_CUES[0], standardize=True), *TINY_CUES[1:])
    model, _ = build_tiny_llavidal(cues)
    rows = [random_cue_features(cues[0], seed=seed) for seed in range(3)]
    rows[2][4, 7] = float("nan")  # one NaN among the training features the statistics are fitted on
    mean, std, _ = feature_statistics(rows, cues[0].feature_dim)
    with pytest.raises(NonFiniteError, match=r"cue 'video': the feature mean fitted for standardisation"):
        model.fit_feature_statistics("video", mean, std)
    assert model.unfitted_standardized_cues() == ["video"]
