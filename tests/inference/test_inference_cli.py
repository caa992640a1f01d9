"""``llavidal ask`` and ``llavidal chat`` on a tiny saved model; ``ask --dry-run`` on the paper-size config."""

import io

import pytest

from llavidal_core.cli import main


def test_ask_prints_the_answer(saved_model, fake_video_plugins, capsys):
    from llavidal_core.inference import LlavidalPipeline

    model_dir, videos = saved_model
    assert main(["ask", str(model_dir), videos[0], "What is the person doing?", "--max-new-tokens", "6",
                 "--device", "cpu"]) == 0
    expected = LlavidalPipeline.from_pretrained(model_dir, device="cpu")(
        video=videos[0], question="What is the person doing?", max_new_tokens=6)
    assert capsys.readouterr().out.strip() == expected


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{model}", "{missing}", "What?"], "absent.mp4: no such file"),
        (["{model}", "{video}", "  "], "the question is empty"),
        (["{model}", "{video}", "What?", "--input", "pose"], "expected CUE=VALUE"),
    ],
)
def test_ask_errors_are_one_line(saved_model, fake_video_plugins, capsys, tmp_path, arguments, message):
    model_dir, videos = saved_model
    filled = [a.format(model=model_dir, video=videos[0], missing=tmp_path / "absent.mp4") for a in arguments]
    assert main(["ask", *filled]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_ask_without_the_plugin_names_the_pip_line(saved_model, llavidal_plugins, capsys):
    model_dir, videos = saved_model
    assert main(["ask", str(model_dir), videos[0], "What?"]) == 1
    assert "pip install llavidal-video" in capsys.readouterr().err


def test_ask_takes_precomputed_features_as_a_file_or_from_a_store(saved_model, llavidal_plugins, capsys, tmp_path):
    """No cue plugin is installed here: an answer can only come from the given features."""
    import torch

    from llavidal_core.features import FeatureStore
    from llavidal_core.inference import LlavidalPipeline

    model_dir, videos = saved_model
    pipe = LlavidalPipeline.from_pretrained(model_dir, device="cpu", load_encoders=False)
    spec = pipe.processor.cues[0]
    features = torch.randn(spec.num_tokens, spec.feature_dim, generator=torch.Generator().manual_seed(1))
    store = FeatureStore(tmp_path / "features")
    store.write("clip_0", "video", features)
    store.write("clip_0", "other_cue", torch.zeros(2, 2))  # a cue the model does not have is left aside
    expected = pipe(features={"video": features}, question="What?", max_new_tokens=5)
    options = ["--max-new-tokens", "5", "--device", "cpu"]
    assert main(["ask", str(model_dir), "What?", "--features", str(store.path_for("clip_0")), *options]) == 0
    assert capsys.readouterr().out.strip() == expected
    assert main(["ask", str(model_dir), videos[0], "What?", "--features", str(store.root), *options]) == 0
    assert capsys.readouterr().out.strip() == expected  # clip_0.mp4 names the store's clip_0 entry
    assert main(["ask", str(model_dir), "What?", "--features", str(store.root), *options]) == 1
    assert "give VIDEO too" in capsys.readouterr().err
    assert main(["ask", str(model_dir), "What?", "--features", str(tmp_path / "none.safetensors"), *options]) == 1
    assert "none.safetensors: no such file (--features)" in capsys.readouterr().err
    assert main(["ask", str(model_dir), videos[1], "What?", "--features", str(store.root), *options]) == 1
    assert "clip_1.safetensors: no such feature file" in capsys.readouterr().err


def test_chat_answers_resets_and_switches_video(saved_model, fake_video_plugins, capsys, monkeypatch):
    model_dir, videos = saved_model
    script = (f"What is the person doing?\n/reset\n/video {videos[1]}\n/video /no/such.mp4\n/frobnicate\n"
              "And then?\n/quit\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", str(model_dir), videos[0], "--max-new-tokens", "4", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2  # two answers
    assert "(conversation forgotten)" in captured.err and f"(now talking about {videos[1]})" in captured.err
    assert "/no/such.mp4: no such file" in captured.err
    assert "unknown command /frobnicate" in captured.err


def test_dry_run_estimates_the_paper_size_model(tmp_path, capsys, llavidal_plugins):
    from transformers import LlamaConfig

    from llavidal_core.modeling import LlavidalConfig
    from llavidal_core.seed_cues import LLAVIDAL_CUES

    vocab = 32000
    token_ids = {}
    for index, spec in enumerate(LLAVIDAL_CUES):  # the seed's ids: patches 32003.., then start/end pairs
        token_ids[spec.name] = {"patch": 32003 + index, "start": 32006 + 2 * index, "end": 32007 + 2 * index}
    text = LlamaConfig(vocab_size=32012, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, max_position_embeddings=2048)
    LlavidalConfig(text_config=text, cues=[s.to_dict() for s in LLAVIDAL_CUES], cue_token_ids=token_ids,
                   use_start_end=True).save_pretrained(tmp_path)
    assert vocab < 32012
    assert main(["ask", str(tmp_path), "--dry-run", "--dtype", "float16", "--max-new-tokens", "512"]) == 0
    out = capsys.readouterr().out
    assert "cues ['video', 'object', 'pose']" in out
    parameters = int(out.split("parameters: ")[1].split(" ")[0].replace(",", ""))
    assert 6.7e9 < parameters < 6.8e9
    weights_gib = float(out.split("weights: ")[1].split(" ")[0])
    assert 12.4 < weights_gib < 12.7


def test_serve_and_eval_name_a_missing_folder(saved_model, fake_video_plugins, capsys, tmp_path):
    model_dir, _ = saved_model
    assert main(["serve", str(model_dir), "--examples", str(tmp_path / "no-examples")]) == 1
    assert "no-examples: no such folder of example videos" in capsys.readouterr().err
    questions = tmp_path / "q.json"
    questions.write_text('[{"video_filename": "a.mp4", "question": "q?", "answer_choices": {"A": "x"}, '
                         '"ground_truth_letter": "A"}]')
    assert main(["eval", "mcq", str(model_dir), "--questions", str(questions), "--videos",
                 str(tmp_path / "no-videos")]) == 1
    assert "no-videos: no such folder" in capsys.readouterr().err
