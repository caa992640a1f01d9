"""The pipeline and ``llavidal ask`` with the real video plugin: a tiny CLIP encodes real video files."""

import pytest
import torch

from llavidal_core.cli import main

pytest.importorskip("llavidal_video", reason="needs the video plugin (pip install ./plugins/video)")


@pytest.fixture(scope="module")
def video_model(tmp_path_factory):
    """A tiny llavidal model whose video cue is llavidal-video with a tiny random CLIP (56 px, 16 patches)."""
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer
    from llavidal_video.testing.videos import save_tiny_clip_vision, write_test_video
    from llavidal_video.encoder import VideoCueEncoder

    root = tmp_path_factory.mktemp("video-model")
    clip = save_tiny_clip_vision(root / "clip", image_size=56, num_hidden_layers=2)
    spec = VideoCueEncoder.from_pretrained(str(clip)).spec
    processor = LlavidalProcessor(build_tiny_tokenizer(), [spec])
    torch.manual_seed(0)
    model = LlavidalForConditionalGeneration.from_language_model(
        build_tiny_causal_lm(seed=5), [spec], processor.cue_token_ids, cue_encoders={"video": str(clip)})
    model.save_pretrained(root / "model", processor=processor)
    videos = [str(write_test_video(root / f"clip_{i}.mp4", num_frames=12 + 4 * i, seed=i)) for i in range(4)]
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(open(videos[0], "rb").read()[:600] + b"\x00garbage" * 50)
    return root / "model", videos, corrupt, spec


@pytest.fixture
def video_plugin(llavidal_plugins):
    import llavidal_video.plugin

    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video")
    return llavidal_plugins


def test_video_features_have_the_spec_shape_and_batching_matches_single_calls(video_model, video_plugin):
    from llavidal_core.inference import LlavidalPipeline

    model_dir, videos, _, spec = video_model
    assert (spec.num_tokens, spec.feature_dim) == (116, 32)  # 100 frame means (padded) + 16 patch means
    pipe = LlavidalPipeline.from_pretrained(model_dir, device="cpu")
    batched = pipe(video=videos, question="What is the person doing?", max_new_tokens=6)
    assert pipe.encoder_calls == 1
    assert batched == [pipe(video=v, question="What is the person doing?", max_new_tokens=6) for v in videos]


def test_ask_answers_and_a_corrupt_video_is_one_clear_line(video_model, video_plugin, capsys):
    model_dir, videos, corrupt, _ = video_model
    assert main(["ask", str(model_dir), videos[0], "What is the person doing?", "--max-new-tokens", "4",
                 "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["ask", str(model_dir), str(corrupt), "What is the person doing?", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("llavidal: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"llavidal: error: {corrupt}: ") and "Traceback" not in err


def test_eval_mcq_computes_video_features_from_the_videos(video_model, video_plugin, tmp_path, capsys):
    import json

    model_dir, videos, _, _ = video_model
    from pathlib import Path

    root = model_dir.parent  # each question's video is opened at DIR/<video_filename>, as the original does
    names = [Path(video).relative_to(root).as_posix() for video in videos[:2]] + ["absent.mp4"]
    records = [{"video_filename": name, "question": "What is the person doing?",
                "answer_choices": {"A": "wave", "B": "clap"}, "ground_truth_letter": "A"} for name in names]
    questions = tmp_path / "toy.json"
    questions.write_text(json.dumps(records))
    report = tmp_path / "report.json"
    assert main(["eval", "mcq", str(model_dir), "--questions", str(questions), "--videos",
                 str(root), "--out", str(report)]) == 0
    written = json.loads(report.read_text())
    assert written["accuracy"]["toy"]["n"] == 2 and written["skipped_missing_features"] == {"toy": 1}
    with pytest.raises(SystemExit):
        main(["eval", "mcq", str(model_dir), "--questions", str(questions)])  # neither --features nor --videos
