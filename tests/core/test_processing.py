"""Chat templates, cue tokens, placeholder expansion, labels, truncation, padding and processor I/O."""

from __future__ import annotations

import pytest
import torch

from llavidal_core.cue_tokens import add_cue_tokens, cue_token_ids_for_appended_rows
from llavidal_core.processing import IGNORE_INDEX, LlavidalProcessor, SequenceTooLongError
from llavidal_core.seed_cues import LLAVIDAL_CUES, OBJECT, POSE, VIDEO
from llavidal_core.templates import LLAVIDAL_V1, VICUNA_V1_1, get_template
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_OBJECT, TINY_POSE, TINY_VIDEO, random_cue_features
from llavidal_core.testing.tiny_models import build_tiny_tokenizer

TWO_TURNS = [
    {"from": "human", "value": "<video>\nWhat is the person doing?"},
    {"from": "gpt", "value": "The person drinks water."},
    {"from": "human", "value": "Which object?"},
    {"from": "gpt", "value": "a cup"},
]


@pytest.fixture
def processor():
    return LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES)


def test_seed_cue_specs():
    assert [spec.name for spec in LLAVIDAL_CUES] == ["video", "object", "pose"]
    video = (VIDEO.placeholder, VIDEO.patch_token, VIDEO.feature_dim, VIDEO.num_tokens)
    assert video == ("<video>", "<vid_patch>", 1024, 356)
    assert (OBJECT.placeholder, OBJECT.feature_dim, OBJECT.tokens_per_item, OBJECT.num_rows(3)) == ("<object>", 512, 8, 24)
    pose = (POSE.placeholder, POSE.start_token, POSE.feature_dim, POSE.num_tokens)
    assert pose == ("<human_pose>", "<pose_start>", 216, 256)
    assert {spec.distribution for spec in LLAVIDAL_CUES} == {"llavidal-video", "llavidal-object", "llavidal-pose"}


def test_cue_token_ids_follow_the_seed_order():
    assert cue_token_ids_for_appended_rows(LLAVIDAL_CUES, True, 32003) == {
        "video": {"patch": 32003, "start": 32006, "end": 32007},
        "object": {"patch": 32004, "start": 32008, "end": 32009},
        "pose": {"patch": 32005, "start": 32010, "end": 32011},
    }
    video_chatgpt = {"video": {"patch": 32003, "start": 32004, "end": 32005}}
    assert cue_token_ids_for_appended_rows((VIDEO,), True, 32003) == video_chatgpt
    tokenizer = build_tiny_tokenizer()
    ids = add_cue_tokens(tokenizer, LLAVIDAL_CUES, use_start_end=True)
    assert ids == cue_token_ids_for_appended_rows(LLAVIDAL_CUES, True, 99)
    assert add_cue_tokens(tokenizer, LLAVIDAL_CUES, use_start_end=True) == ids and len(tokenizer) == 108
    assert tokenizer.convert_tokens_to_ids("<video>") == tokenizer.unk_token_id  # placeholders stay out of the vocab


def test_templates_render_the_seed_prompts():
    assert VICUNA_V1_1.render(TWO_TURNS) == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <video>\nWhat is the person doing? "
        "ASSISTANT: The person drinks water.</s>USER: Which object? ASSISTANT: a cup</s>"
    )
    assert LLAVIDAL_V1.render(TWO_TURNS[:1], add_generation_prompt=True) == (
        "You are llavidal, a large vision-language assistant. You are able to understand the video content that the "
        "user provides, and assist the user with a variety of tasks using natural language.Follow the instructions "
        "carefully and explain your answers in detail based on the provided video. USER: <video>\nWhat is the person "
        "doing? ASSISTANT:"
    )
    answers = "".join(s.text for s in VICUNA_V1_1.segments(TWO_TURNS) if s.is_answer)
    assert answers == " The person drinks water.</s> a cup</s>"
    with pytest.raises(ValueError, match="turn 1 is from 'user', expected 'assistant'"):
        VICUNA_V1_1.render([TWO_TURNS[0], TWO_TURNS[0]])
    with pytest.raises(ValueError, match="unknown chat template 'chatml'"):
        get_template("chatml")


def answer_spans(labels: list[int]) -> list[list[int]]:
    spans, current = [], []
    for label in labels:
        if label == IGNORE_INDEX:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(label)
    return spans + ([current] if current else [])


def test_labels_cover_exactly_the_answers_token_by_token(processor):
    tokenizer = processor.tokenizer
    sample = processor.encode(TWO_TURNS, {"video": 5})

    assert len(sample.input_ids) == len(sample.labels)
    for token, label in zip(sample.input_ids, sample.labels):
        assert label in (IGNORE_INDEX, token)
    spans = answer_spans(sample.labels)
    assert spans == [tokenizer("The person drinks water.</s>", add_special_tokens=False)["input_ids"],
                     tokenizer("a cup</s>", add_special_tokens=False)["input_ids"]]
    assert [tokenizer.decode(span) for span in spans] == ["The person drinks water.</s>", "a cup</s>"]
    assert sample.input_ids[0] == tokenizer.bos_token_id and sample.labels[0] == IGNORE_INDEX
    video = processor.cue_token_ids["video"]
    run = [video["start"], *[video["patch"]] * 5, video["end"]]
    start = sample.input_ids.index(video["start"])
    assert sample.input_ids[start:start + 7] == run and set(sample.labels[start:start + 7]) == {IGNORE_INDEX}
    assert tokenizer.decode(sample.input_ids, skip_special_tokens=True).count("ASSISTANT:") == 2


def test_object_rows_come_from_each_samples_features(processor):
    two_objects = random_cue_features(TINY_OBJECT, 2).reshape(2, 2, -1)  # (items, rows per item, dim) is accepted
    batch = processor(
        [[{"from": "human", "value": "<object> hi"}, {"from": "gpt", "value": "a cup"}]] * 2,
        [{"object": two_objects}, {"object": random_cue_features(TINY_OBJECT, 3)}],
    )
    patch = processor.cue_token_ids["object"]["patch"]
    assert (batch["input_ids"] == patch).sum(1).tolist() == [4, 6]
    assert batch["cue_features"]["object"].shape == (2, 6, TINY_OBJECT.feature_dim)
    assert batch["cue_feature_masks"]["object"].sum(1).tolist() == [4, 6]
    torch.testing.assert_close(batch["cue_features"]["object"][0, :4], two_objects.reshape(4, -1))


def test_missing_cues_are_masked_and_fixed_cues_stack_without_a_mask(processor):
    video = [random_cue_features(TINY_VIDEO, seed=i) for i in range(2)]
    batch = processor(
        [[{"from": "human", "value": "<video><human_pose> hi"}, {"from": "gpt", "value": "ok"}]] * 2,
        [{"video": video[0], "pose": random_cue_features(TINY_POSE)}, {"video": video[1]}],
    )
    assert "video" not in batch["cue_feature_masks"]
    torch.testing.assert_close(batch["cue_features"]["video"], torch.stack(video))
    assert batch["cue_feature_masks"]["pose"].tolist() == [[True] * 3, [False] * 3]
    pose_patch = processor.cue_token_ids["pose"]["patch"]
    assert (batch["input_ids"] == pose_patch).sum(1).tolist() == [3, 0]  # placeholder without features is dropped


def test_feature_and_placeholder_problems_are_clear_errors(processor):
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]
    with pytest.raises(ValueError, match=r"sample 0: features were given for cues \['video'\] but the text has no "
                                         r"placeholder for them \(<video>\)"):
        processor([turns], [{"video": random_cue_features(TINY_VIDEO)}])
    with pytest.raises(ValueError, match=r"cue 'video': features have 4 rows, expected 5"):
        processor([turns], [{"video": torch.zeros(4, TINY_VIDEO.feature_dim)}])
    with pytest.raises(ValueError, match=r"cue 'object': features have 3 rows, not a multiple of 2"):
        processor([turns], [{"object": torch.zeros(3, TINY_OBJECT.feature_dim)}])
    with pytest.raises(ValueError, match=r"sample 0: unknown cues \['audio'\]"):
        processor([turns], [{"audio": torch.zeros(1, 1)}])


def test_truncation_never_cuts_a_placeholder_run():
    processor = LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=40)
    long_question = "What is the person doing in the video? " * 4
    late_video = [{"from": "human", "value": f"{long_question}<video>"}, {"from": "gpt", "value": "ok"}]
    with pytest.raises(SequenceTooLongError, match=r"sample 0: \d+ tokens exceed model_max_length 40, and truncating "
                                                   r"would cut the <video> run \(tokens \d+-\d+, 7 long\)"):
        processor.encode(late_video, {"video": 5})

    early_video = [{"from": "human", "value": f"<video>{long_question}"}, {"from": "gpt", "value": "ok"}]
    short_limit = LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=200)
    full = short_limit.encode(early_video, {"video": 5})
    cut = LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=len(full.input_ids) - 3)
    truncated = cut.encode(early_video, {"video": 5})
    assert truncated.input_ids == full.input_ids[:-3] and truncated.labels == full.labels[:-3]


def test_padding_right_for_training_and_left_for_generation(processor):
    short = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]
    longer = [{"from": "human", "value": "What is the person doing?"}, {"from": "gpt", "value": "The person reads a book"}]
    pad = processor.tokenizer.pad_token_id

    train = processor([short, longer])
    assert train["attention_mask"][0, 0] == 1 and train["attention_mask"][0, -1] == 0
    padded = train["attention_mask"] == 0
    assert (train["input_ids"][padded] == pad).all() and (train["labels"][padded] == IGNORE_INDEX).all()

    prompts = processor([short[:1], longer[:1]], add_generation_prompt=True)
    assert "labels" not in prompts
    assert prompts["attention_mask"][0, 0] == 0 and (prompts["attention_mask"][:, -1] == 1).all()
    ends = processor.tokenizer.batch_decode(prompts["input_ids"][:, -3:])
    assert ends[0] == ends[1]  # both prompts end with "ASSISTANT:"
    assert processor.tokenizer.decode(prompts["input_ids"][1], skip_special_tokens=True).startswith("You are llavidal")


def test_save_and_load_the_processor(processor, tmp_path):
    import llavidal_core.modeling  # noqa: F401 - registers the processor with AutoProcessor
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path)
    assert (tmp_path / "processor_config.json").is_file() and (tmp_path / "tokenizer.json").is_file()

    for loaded in (LlavidalProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert isinstance(loaded, LlavidalProcessor)
        assert loaded.cues == processor.cues and loaded.cue_token_ids == processor.cue_token_ids
        assert len(loaded.tokenizer) == len(processor.tokenizer)
        assert loaded.encode(TWO_TURNS, {"video": 5}) == processor.encode(TWO_TURNS, {"video": 5})
