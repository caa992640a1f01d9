"""Token ids and label masks equal the original LLAVIDAL's, id for id (values from its own code, transformers 4.41.1)."""

from __future__ import annotations

import pytest

from llavidal_core.legacy_tokenization import LegacyTokenizationError, SentencePieceLegacyEncoder
from llavidal_core.processing import IGNORE_INDEX, LlavidalProcessor
from llavidal_core.seed_cues import LLAVIDAL_CUES


@pytest.fixture(scope="module")
def legacy_processor(original_tokenizer):
    return LlavidalProcessor(original_tokenizer, LLAVIDAL_CUES, tokenization="sentencepiece_legacy")


def test_cue_token_ids_are_the_originals(legacy_processor, expected_tokenization):
    original = expected_tokenization["training"]["cue_token_ids"]
    for spec in LLAVIDAL_CUES:
        ids = legacy_processor.cue_token_ids[spec.name]
        assert (ids["patch"], ids["start"], ids["end"]) == (
            original[spec.patch_token], original[spec.start_token], original[spec.end_token])


@pytest.mark.parametrize("name", ["adlx_all_cues_two_turns", "videoinstruct_placeholder_after",
                                  "videoinstruct_placeholder_before", "three_turns", "answer_begins_with_space",
                                  "digits_newlines_and_unicode"])
def test_training_ids_and_labels_equal_the_originals(legacy_processor, expected_tokenization, name):
    sample = expected_tokenization["training"]["conversations"][name]
    encoded = legacy_processor.encode(sample["conversations"], sample["cues"])
    assert encoded.input_ids == sample["input_ids"]
    assert encoded.labels == sample["labels"]


def test_an_answer_beginning_with_a_space_is_supervised_as_written(legacy_processor, original_tokenizer,
                                                                   expected_tokenization):
    sample = expected_tokenization["training"]["conversations"]["answer_begins_with_space"]
    encoded = legacy_processor.encode(sample["conversations"], sample["cues"])
    supervised = [token for token in encoded.labels if token != IGNORE_INDEX]
    assert original_tokenizer.convert_ids_to_tokens(supervised[:2]) == ["\u2581", "\u2581The"]


def test_inference_prompt_ids_equal_the_originals(legacy_processor, expected_tokenization):
    for prompt in expected_tokenization["inference"]["prompts"]:
        encoded = legacy_processor.encode([{"from": "human", "value": prompt["question"] + "\n<video>"}],
                                          {"video": 356}, add_generation_prompt=True)
        assert encoded.input_ids == prompt["input_ids"]


def test_native_tokenization_differs_after_a_cue_run(original_tokenizer, expected_tokenization):
    """What transformers 5 alone gives: one boundary mark after <vid_end>, where the original had two."""
    native = LlavidalProcessor(original_tokenizer, LLAVIDAL_CUES)
    prompt = expected_tokenization["inference"]["prompts"][0]
    encoded = native.encode([{"from": "human", "value": prompt["question"] + "\n<video>"}], {"video": 356},
                            add_generation_prompt=True)
    assert encoded.input_ids != prompt["input_ids"]


def test_the_tokenization_is_saved_with_the_processor(legacy_processor, tmp_path):
    legacy_processor.save_pretrained(tmp_path)
    reloaded = LlavidalProcessor.from_pretrained(tmp_path)
    assert reloaded.tokenization == "sentencepiece_legacy"
    sample = [{"from": "human", "value": "<video>\nWhat?"}, {"from": "gpt", "value": " Yes."}]
    assert reloaded.encode(sample, {"video": 4}) == legacy_processor.encode(sample, {"video": 4})


def test_legacy_tokenization_refuses_a_word_level_tokenizer():
    from llavidal_object.testing import build_word_tokenizer

    word_level = build_word_tokenizer({"unk_token": "<unk>", "pad_token": "<pad>"})
    with pytest.raises(LegacyTokenizationError, match="SentencePiece"):
        SentencePieceLegacyEncoder(word_level)


def test_unknown_tokenization_is_refused(original_tokenizer):
    with pytest.raises(ValueError, match="unknown tokenization 'slow'"):
        LlavidalProcessor(original_tokenizer, LLAVIDAL_CUES, tokenization="slow")


def test_legacy_tokenization_refuses_a_normaliser_it_would_bypass(original_tokenizer):
    import copy

    from tokenizers import normalizers

    lowercasing = copy.deepcopy(original_tokenizer)
    lowercasing.backend_tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Lowercase(), normalizers.Replace(" ", "\u2581")])
    with pytest.raises(LegacyTokenizationError, match="Lowercase"):
        SentencePieceLegacyEncoder(lowercasing)
