"""The inference pipeline on a tiny random model with the fake cue: loading, batching, chat, errors, stops."""

import warnings

import pytest
import torch

from llavidal_core.errors import LlavidalError, MissingPluginError
from llavidal_core.inference import LlavidalPipeline
from llavidal_core.inference.stopping import cut_at_stop_strings, hold_back_stop_strings

@pytest.fixture
def pipe(saved_model, fake_video_plugins):
    return LlavidalPipeline.from_pretrained(saved_model[0], device="cpu")


def test_answers_a_question_about_a_video(pipe, saved_model):
    _, videos = saved_model
    answer = pipe(video=videos[0], question="What is the person doing?", max_new_tokens=8)
    assert isinstance(answer, str)
    assert answer == pipe(video=videos[0], question="What is the person doing?", max_new_tokens=8)  # greedy


def test_loads_by_repo_id_from_an_offline_hub_cache(saved_model, fake_video_plugins, offline_hub):
    model_dir, videos = saved_model
    offline_hub.add("llavidal-tests/tiny-fake", model_dir)
    by_id = LlavidalPipeline.from_pretrained("llavidal-tests/tiny-fake", device="cpu")
    by_path = LlavidalPipeline.from_pretrained(model_dir, device="cpu")
    question = "Describe the video."
    assert by_id(video=videos[1], question=question, max_new_tokens=6) == \
        by_path(video=videos[1], question=question, max_new_tokens=6)


def test_a_bundled_encoder_is_rebuilt_from_the_model_folder_or_its_hub_snapshot(saved_model, fake_video_plugins,
                                                                                offline_hub, tmp_path):
    """The encoder folder saved inside the model (cue_encoders/video/) is found wherever the model is."""
    from llavidal_core.encoder_records import EncoderRecord
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder

    model_dir, videos = saved_model
    encoder_dir = model_dir.parent / "encoder"
    bundled = tmp_path / "bundled"
    model = LlavidalForConditionalGeneration.from_pretrained(model_dir)
    model.config.cue_encoders = {"video": EncoderRecord(pretrained=str(encoder_dir)).bundle(bundled, "video").to_dict()}
    model.save_pretrained(bundled, processor=LlavidalProcessor.from_pretrained(model_dir))
    assert model.config.cue_encoders["video"]["pretrained"] == "cue_encoders/video/pretrained"
    offline_hub.add("llavidal-tests/bundled", bundled)
    expected = FakeCueEncoder.from_pretrained(str(encoder_dir)).encode([videos[2]])[0]
    for location in (bundled, "llavidal-tests/bundled"):
        pipe = LlavidalPipeline.from_pretrained(location, device="cpu")
        assert torch.equal(pipe.compute_features([{"video": videos[2]}])[0]["video"], expected), location


def test_batch_gives_the_same_greedy_answers_as_single_calls(pipe, saved_model):
    _, videos = saved_model
    questions = ["What happens?", "Who is there?", "What does the person hold in the hand?", "Why?"]
    batched = pipe(video=videos, question=questions, max_new_tokens=8)
    singles = [pipe(video=v, question=q, max_new_tokens=8) for v, q in zip(videos, questions)]
    assert batched == singles
    assert pipe.encoder_calls == 1 + 4  # the batch ran the encoder once over all four videos


def test_chat_keeps_history_and_computes_features_once(pipe, saved_model):
    _, videos = saved_model
    chat = pipe.chat(video=videos[0])
    assert pipe.encoder_calls == 1
    first = chat.ask("What is the person doing?", max_new_tokens=5)
    second = chat.ask("And then?", max_new_tokens=5)
    assert pipe.encoder_calls == 1
    assert [turn["from"] for turn in chat.history] == ["human", "gpt", "human", "gpt"]
    assert chat.history[1]["value"] == first and chat.history[3]["value"] == second
    assert "<video>" in chat.history[0]["value"] and "<video>" not in chat.history[2]["value"]
    chat.reset()
    assert chat.history == [] and chat.ask("What is the person doing?", max_new_tokens=5) == first
    chat.set_sample(video=videos[2])
    assert pipe.encoder_calls == 2


def test_a_placeholder_the_model_writes_does_not_break_the_next_turn(pipe, saved_model, monkeypatch):
    """A tiny model trained on prompts holding "<video>" may write it; the next turn must still work."""
    _, videos = saved_model
    chat = pipe.chat(video=videos[0])
    monkeypatch.setattr(pipe, "generate_answers", lambda *args, **kwargs: ["It is <video> a person."])
    assert chat.ask("What is it?") == "It is <video> a person."
    assert chat.history[1]["value"] == "It is  a person."
    monkeypatch.undo()
    assert isinstance(chat.ask("And then?", max_new_tokens=3), str)


def test_precomputed_features_give_the_same_answer(pipe, saved_model):
    _, videos = saved_model
    features = pipe.encoders["video"].encode([videos[0]])[0]
    assert pipe(features={"video": features}, question="What?", max_new_tokens=6) == \
        pipe(video=videos[0], question="What?", max_new_tokens=6)


def test_streaming_yields_the_whole_answer(pipe, saved_model):
    _, videos = saved_model
    pieces = list(pipe(video=videos[3], question="What is the person doing?", max_new_tokens=10, stream=True))
    assert "".join(pieces).strip() == pipe(video=videos[3], question="What is the person doing?", max_new_tokens=10)


def test_missing_cue_input_is_left_out_with_a_warning(pipe):
    with pytest.warns(UserWarning, match=r"no input for the cue\(s\) \['video'\]"):
        answer = pipe(question="What is the person doing?", max_new_tokens=4)
    assert isinstance(answer, str)


def test_missing_file_and_empty_question_are_clear_errors(pipe, saved_model, tmp_path):
    _, videos = saved_model
    with pytest.raises(LlavidalError, match="absent.mp4: no such file"):
        pipe(video=str(tmp_path / "absent.mp4"), question="What?")
    with pytest.raises(ValueError, match="the question is empty"):
        pipe(video=videos[0], question="   ")
    with pytest.raises(LlavidalError, match=r"cues \['pose'\] that the model does not have"):
        pipe(features={"pose": torch.zeros(256, 216)}, question="What?")
    with pytest.raises(LlavidalError, match=r"cues \['pose'\] that the model does not have"):
        pipe(inputs={"pose": videos[0]}, question="What?")
    with pytest.raises(ValueError, match=r"features must be a \{cue: ...\} dict per sample"):
        pipe(features=[torch.zeros(4, 8)], question="What?")


def test_missing_plugin_names_the_pip_line(saved_model, llavidal_plugins):
    """The model still loads (precomputed features work); computing the cue's features names the pip line."""
    with pytest.warns(UserWarning, match="pip install llavidal-video"):
        pipe = LlavidalPipeline.from_pretrained(saved_model[0], device="cpu")
    with pytest.raises(MissingPluginError, match="pip install llavidal-video.*--encoder video=ID"):
        pipe(video=saved_model[1][0], question="What?")
    features_only = LlavidalPipeline.from_pretrained(saved_model[0], device="cpu", load_encoders=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(features_only(features={"video": torch.zeros(4, 8)}, question="What?", max_new_tokens=3), str)


QUESTION = "What is the person doing?"
# stop strings against the tiny model's greedy answer to QUESTION about videos[0], whose tokens are
# "▁ N ion 0 p an ▁ ▁assistan ▁c ion 0 p an ▁ ▁assistan ▁c ▁do g u f - l E R": after a "▁" marker, starting
# or ending inside a token, spanning tokens and spaces, at the very start, twice, and absent
STOP_STRINGS = ["assistan", "dog", "ssist", "ion0", "c d", "an  a", "f-lE", "N", "R", "uf", "zzz", "cion"]


@pytest.mark.parametrize("stop", STOP_STRINGS)
def test_stop_strings_cut_streamed_and_whole_answers_alike(pipe, saved_model, stop):
    _, videos = saved_model
    unstopped = pipe(video=videos[0], question=QUESTION, max_new_tokens=24)
    whole = pipe(video=videos[0], question=QUESTION, max_new_tokens=24, stop=[stop])
    streamed = "".join(pipe(video=videos[0], question=QUESTION, max_new_tokens=24, stop=[stop], stream=True))
    assert whole == cut_at_stop_strings(unstopped, [stop]).strip()
    assert streamed.strip() == whole
    if stop in unstopped:
        assert stop not in whole and len(whole) < len(unstopped)


def test_several_stop_strings_cut_at_the_first_completed(pipe, saved_model):
    _, videos = saved_model
    full = pipe(video=videos[0], question=QUESTION, max_new_tokens=24)
    # a longer stop string that starts first, and a shorter one inside it that completes first (the tiny
    # model's greedy text shifts with the machine's float rounding, so the strings are taken from it)
    start = next(i for i in range(1, len(full) - 7)
                 if full.find(full[i:i + 7]) == i and full.find(full[i + 2:i + 4]) == i + 2)
    longer, shorter = full[start:start + 7], full[start + 2:start + 4]
    stops = [longer, shorter, "an  assistan c"]
    whole = pipe(video=videos[0], question=QUESTION, max_new_tokens=24, stop=stops)
    streamed = "".join(pipe(video=videos[0], question=QUESTION, max_new_tokens=24, stop=stops, stream=True))
    assert whole == streamed.strip() == full[:start + 2].strip()


def test_a_batch_stops_each_row_at_its_own_stop_string(pipe, saved_model):
    _, videos = saved_model
    questions = [QUESTION, "Describe the video."]
    unstopped = pipe(video=videos[:2], question=questions, max_new_tokens=24)
    stopped = pipe(video=videos[:2], question=questions, max_new_tokens=24, stop=["dog"])
    assert stopped == [cut_at_stop_strings(answer, ["dog"]).strip() for answer in unstopped]


def test_stop_strings_are_cut_as_text_not_as_characters():
    # the seed's rstrip("</s>") would eat the final "s" of "drinks"
    assert cut_at_stop_strings("the person drinks</s>", ["</s>"]) == "the person drinks"
    assert cut_at_stop_strings("the person drinks", ["person"]) == "the "
    assert cut_at_stop_strings("no stop here", ["zzz"]) == "no stop here"


@pytest.mark.parametrize("pieces", [["the per", "son dri", "nks"], ["t", "h", "e", " ", "p", "erson", " drinks"],
                                    ["the person drinks"], ["the pe", "rs", "on", " drinks"]])
def test_held_back_stream_equals_the_cut_text_however_it_is_split(pieces):
    stops = ["erson d", "son", "rinks"]  # "son" completes first, though "erson d" starts earlier
    assert "".join(hold_back_stop_strings(pieces, stops)) == cut_at_stop_strings("".join(pieces), stops) == "the per"


def test_an_empty_stop_string_is_refused(pipe, saved_model):
    with pytest.raises(ValueError, match="a stop string must be a non-empty string"):
        pipe(video=saved_model[1][0], question=QUESTION, stop=[""])


def test_a_model_whose_encoder_record_is_broken_says_which_cue(saved_model, fake_video_plugins, tmp_path):
    import json
    import shutil

    from llavidal_core.errors import LlavidalError

    model_dir, _ = saved_model
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["cue_encoders"] = {"video": {"pretrained": "../../etc", "bundled": ["pretrained"]}}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="cue 'video': the model's encoder record is not valid.*not inside"):
        LlavidalPipeline.from_pretrained(broken, device="cpu")
    config["cue_encoders"] = {"video": {"pretrained": str(tmp_path / "no-such-encoder")}}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="cue 'video': cannot build its encoder from .*no-such-encoder"):
        pipe = LlavidalPipeline.from_pretrained(broken, device="cpu")
    with pytest.raises(LlavidalError, match="no encoder is loaded for the cue 'video' .*no-such-encoder"):
        pipe(video=saved_model[1][0], question="What?")
    spec = pipe.processor.cues[0]  # precomputed features still answer
    assert isinstance(pipe(features={"video": torch.zeros(spec.num_tokens, spec.feature_dim)}, question="What?",
                           max_new_tokens=3), str)


def test_any_generate_option_and_a_generation_config_reach_generate(pipe, saved_model):
    from transformers import GenerationConfig

    _, videos = saved_model
    question = "What is the person doing?"
    greedy = pipe(video=videos[0], question=question, max_new_tokens=6)
    beams = pipe(video=videos[0], question=question, max_new_tokens=6, num_beams=3, repetition_penalty=1.3)
    assert isinstance(beams, str)
    several = pipe(video=videos[:2], question=question, max_new_tokens=6, num_beams=3, num_return_sequences=2)
    assert len(several) == 2 and all(isinstance(answers, list) and len(answers) == 2 for answers in several)
    config = GenerationConfig(max_new_tokens=6, do_sample=False, num_beams=1)
    assert pipe(video=videos[0], question=question, generation_config=config) == greedy
    shorter = pipe(video=videos[0], question=question, generation_config=config, max_new_tokens=2)
    assert len(shorter) <= len(greedy)  # a setting given here overrides the config
    with pytest.raises(ValueError, match="not_a_generate_option"):
        pipe(video=videos[0], question=question, max_new_tokens=2, not_a_generate_option=1)
    with pytest.raises(ValueError, match="num_return_sequences must be 1"):
        pipe.chat(video=videos[0]).ask(question, num_return_sequences=2, num_beams=2)


def test_messages_through_apply_chat_template_and_generate_answer_as_the_pipeline(saved_model, fake_video_plugins):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir, videos = saved_model
    question = "What is the person doing?"
    expected = LlavidalPipeline.from_pretrained(model_dir, device="cpu")(video=videos[0], question=question,
                                                                         max_new_tokens=8)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    messages = [{"role": "user", "content": [{"type": "text", "text": question},
                                             {"type": "video", "path": str(videos[0])}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True)  # the encoder the model records
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False,
                            pad_token_id=processor.tokenizer.pad_token_id)
    answer = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert answer.strip() == expected
