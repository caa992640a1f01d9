"""transformers-style messages: content parts, cue parts, the Jinja versions of llavidal's templates."""

import pytest
import torch

from llavidal_core.chat_messages import parse_messages
from llavidal_core.templates import LLAVIDAL_V1, VICUNA_V1_1
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_OBJECT, TINY_POSE, TINY_VIDEO, build_tiny_llavidal, \
    random_cue_features

VIDEO = random_cue_features(TINY_VIDEO)
POSE = random_cue_features(TINY_POSE)

CONVERSATIONS = [
    [{"role": "user", "content": [{"type": "text", "text": "What happens?"}, {"type": "video", "features": VIDEO}]}],
    [{"role": "user", "content": [{"type": "video", "features": VIDEO}, {"type": "pose", "features": POSE},
                                  {"type": "text", "text": "Describe it."}]},
     {"role": "assistant", "content": "The person drinks water."},
     {"role": "user", "content": "And then?"}],
    [{"role": "system", "content": "Answer in one word."},
     {"role": "user", "content": [{"type": "text", "text": "Where?"}, {"type": "text", "text": "Be brief."}]}],
]


@pytest.fixture(scope="module")
def fused():
    return build_tiny_llavidal()


def test_parts_become_placeholders_as_llavidal_writes_them():
    parsed = parse_messages(CONVERSATIONS[1], TINY_CUES)
    assert parsed.turns[0] == {"role": "user", "content": "<video><human_pose>\nDescribe it."}
    assert set(parsed.cue_inputs) == {"video", "pose"} and parsed.system is None
    assert parse_messages(CONVERSATIONS[0], TINY_CUES).turns[0]["content"] == "What happens?\n<video>"
    assert parse_messages(CONVERSATIONS[2], TINY_CUES).system == "Answer in one word."
    with pytest.raises(ValueError, match="part 0: part type 'image'"):
        parse_messages([{"role": "user", "content": [{"type": "image", "path": "x.png"}]}], TINY_CUES)
    with pytest.raises(ValueError, match="has no input"):
        parse_messages([{"role": "user", "content": [{"type": "video"}]}], TINY_CUES)
    with pytest.raises(ValueError, match="a second 'video' part"):
        parse_messages([{"role": "user", "content": [{"type": "video", "path": "a"}, {"type": "video", "path": "b"}]}],
                       TINY_CUES)


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("name, template", [("llavidal_v1", LLAVIDAL_V1), ("vicuna_v1_1", VICUNA_V1_1)])
def test_the_jinja_templates_render_what_the_templates_render(fused, messages, name, template):
    _, processor = fused
    parsed = parse_messages(messages, TINY_CUES)
    expected = template.render(parsed.turns, add_generation_prompt=True, system=parsed.system)
    rendered = processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                       chat_template=name)
    assert rendered == expected
    if name == "llavidal_v1":  # the processor's own template and the tokenizer's default are the inference one
        assert processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == expected
        assert processor.tokenizer.apply_chat_template(messages, tokenize=False) == expected


def test_tokenized_messages_equal_the_processor_on_the_same_conversation(fused):
    model, processor = fused
    messages = CONVERSATIONS[1][:2]
    batch = processor.apply_chat_template(messages, return_assistant_tokens_mask=True)
    direct = processor([[{"from": "human", "value": "<video><human_pose>\nDescribe it."},
                         {"from": "gpt", "value": "The person drinks water."}]], [{"video": VIDEO, "pose": POSE}])
    assert torch.equal(batch["input_ids"], direct["input_ids"]) and torch.equal(batch["labels"], direct["labels"])
    assert torch.equal(batch["assistant_masks"].bool(), direct["labels"] != -100)
    assert torch.isfinite(model(**{k: v for k, v in batch.items() if k != "assistant_masks"}).loss)
    two = processor.apply_chat_template([CONVERSATIONS[0], CONVERSATIONS[2]], add_generation_prompt=True)
    assert two["input_ids"].shape[0] == 2 and set(two["cue_features"]) == {"video"}
    with pytest.raises(ValueError, match="no encoder for the video cue"):
        processor.apply_chat_template([{"role": "user", "content": [{"type": "video", "path": "clip.mp4"}]}],
                                      add_generation_prompt=True)


def test_the_templates_are_saved_with_the_tokenizer(fused, tmp_path):
    from transformers import AutoTokenizer

    _, processor = fused
    processor.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert {"default", "llavidal_v1", "vicuna_v1_1"} <= set(tokenizer.chat_template)
    messages = CONVERSATIONS[0]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == \
        processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_template_base_prompts_with_the_base_lms_own_template_and_labels_answers_only(tmp_path):
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.tiny_models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = CHATML
    processor = LlavidalProcessor(tokenizer, TINY_CUES, template="base", inference_template="base")
    messages = [{"role": "user", "content": [{"type": "video", "features": VIDEO}, {"type": "text", "text": "Why?"}]},
                {"role": "assistant", "content": "Thirsty."}]
    assert processor.apply_chat_template(messages, tokenize=False) == \
        "<|im_start|>user\n<video>\nWhy?<|im_end|>\n<|im_start|>assistant\nThirsty.<|im_end|>\n"
    batch = processor.apply_chat_template(messages)
    answer = batch["input_ids"][0][batch["labels"][0] != -100]
    segments = processor.template.segments(parse_messages(messages, TINY_CUES).turns)
    assert [(segment.text, segment.is_answer) for segment in segments] == [
        ("<|im_start|>user\n<video>\nWhy?<|im_end|>\n<|im_start|>assistant\n", False), ("Thirsty.<|im_end|>\n", True)]
    assert answer.tolist() == processor.tokenizer("Thirsty.<|im_end|>\n", add_special_tokens=False)["input_ids"]
    prompt = processor.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    processor.save_pretrained(tmp_path)
    loaded = LlavidalProcessor.from_pretrained(tmp_path)
    assert loaded.apply_chat_template(messages, tokenize=False) == processor.apply_chat_template(messages, tokenize=False)
    assert loaded.tokenizer.chat_template["default"] == CHATML
    with pytest.raises(ValueError, match="has none"):
        LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, template="base")
