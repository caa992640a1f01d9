"""lmms-eval evaluates a llavidal model through the adapter plugin (plugins/lmms_eval).

The end-to-end test installs the adapter with pip, then runs lmms-eval's own CLI (``python -m lmms_eval
--model llavidal --model_args pretrained=MODEL``, lmms-eval from the folder `make lmms-eval` fills) on the
local tasks of tests/evaluation/lmms_task: a generate_until task, a multiple_choice task and a two-round
task, over four generated videos. The model has two cues: the real video cue (llavidal-video, a tiny CLIP
reading the videos) and the fake cue, read from a doc field (``cue_fields=fake:skeleton``). Each doc's
expected answers and option scores are computed here with the pipeline and llavidal's MCQ scoring; one doc
of each task is given a wrong target, so every metric must come out at exactly 0.75.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
ADAPTER = REPO_ROOT / "plugins" / "lmms_eval"
TASKS = Path(__file__).resolve().parent / "lmms_task"
LMMS_EVAL_SITE = Path(sys.prefix) / "lmms-eval-site"  # where `make lmms-eval` installs lmms-eval's evaluator

QUESTIONS = ["What is the person doing?", "Which object does the person hold?", "Describe the actions in order.",
             "What is the person doing in the video?"]
CHOICES = ["wave", "clap", "sit down"]
GENERATION = {"max_new_tokens": 5, "stop": ("\n\n",)}  # the tasks' generation_kwargs, as the adapter maps them

# a distribution whose llavidal plugin is the fake cue, for the lmms-eval process to load by entry point
FAKE_CUE_DISTRIBUTION = "llavidal-test-fake-cue"
FAKE_CUE_MODULE = """\
from llavidal_core import hookimpl
from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC


@hookimpl
def llavidal_register_cues(register):
    register(FAKE_CUE_SPEC, encoder="llavidal_core.testing.fake_cue_encoder:FakeCueEncoder")
"""


@pytest.fixture(scope="module")
def lmms_eval_site():
    if not (LMMS_EVAL_SITE / "lmms_eval").is_dir():
        pytest.skip(f"lmms-eval is not installed at {LMMS_EVAL_SITE} (make lmms-eval; make test does it)")
    return LMMS_EVAL_SITE


@pytest.fixture(scope="module")
def adapter_site(tmp_path_factory):
    """The adapter installed from its folder with pip (its entry point in lmms_eval.models), and the fake cue's
    distribution (its entry point in llavidal)."""
    target = tmp_path_factory.mktemp("adapter-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ADAPTER)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    module = FAKE_CUE_DISTRIBUTION.replace("-", "_")
    (target / f"{module}.py").write_text(FAKE_CUE_MODULE)
    info = target / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {FAKE_CUE_DISTRIBUTION}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[llavidal]\nfake = {module}\n")
    return target


@pytest.fixture(scope="module")
def two_cue_model(tmp_path_factory):
    """A tiny model with the real video cue (a tiny random CLIP) and the fake cue, four videos and four
    "skeleton" files (the fake cue's inputs)."""
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer
    from llavidal_video.encoder import VideoCueEncoder
    from llavidal_video.testing.videos import save_tiny_clip_vision, write_test_video

    root = tmp_path_factory.mktemp("lmms-eval-model")
    clip = save_tiny_clip_vision(root / "clip", image_size=56, num_hidden_layers=2)
    specs = [VideoCueEncoder.from_pretrained(str(clip)).spec, FAKE_CUE_SPEC]
    torch.manual_seed(0)
    FakeCueEncoder().save_pretrained(root / "fake_encoder")
    processor = LlavidalProcessor(build_tiny_tokenizer(), specs)
    model = LlavidalForConditionalGeneration.from_language_model(
        build_tiny_causal_lm(seed=5), specs, processor.cue_token_ids,
        cue_encoders={"video": str(clip), "fake": str(root / "fake_encoder")})
    model.save_pretrained(root / "model", processor=processor)
    videos = [str(write_test_video(root / f"clip_{i}.mp4", num_frames=12 + 4 * i, seed=i)) for i in range(4)]
    skeletons = []
    for i in range(4):
        skeleton = root / f"skeleton_{i}.txt"
        skeleton.write_text(f"joints of clip {i}\n")
        skeletons.append(str(skeleton))
    return root / "model", videos, skeletons


def expected_outputs(model_dir, videos, skeletons, llavidal_plugins):
    """Each doc's answer, second-round answer and option NLLs, computed with the pipeline in this process."""
    import llavidal_video.plugin

    from llavidal_core.evaluation.mcq_scoring import answer_log_likelihoods
    from llavidal_core.inference import LlavidalPipeline
    from llavidal_core.testing.fake_cue import FakeCuePlugin

    llavidal_plugins.register(llavidal_video.plugin, name="video", distribution="llavidal-video")
    llavidal_plugins.register(FakeCuePlugin(), name="fake", distribution=FAKE_CUE_DISTRIBUTION)
    rounds = _task_utils()
    pipe = LlavidalPipeline.from_pretrained(model_dir, device="cpu")
    inputs = [{"video": video, "fake": skeleton} for video, skeleton in zip(videos, skeletons)]
    answers = pipe(question=QUESTIONS, inputs=inputs, **GENERATION)
    second = [pipe(question=rounds.follow_up({"question": question}, answer), inputs=sample, **GENERATION)
              for question, answer, sample in zip(QUESTIONS, answers, inputs)]
    option_nlls = []
    for question, sample in zip(QUESTIONS, inputs):
        features = pipe.compute_features([sample])[0]
        message = pipe.user_message(question, features)
        batch = pipe.processor([[{"from": "human", "value": message}, {"from": "gpt", "value": choice}]
                                for choice in CHOICES], [features] * len(CHOICES))
        with torch.no_grad():
            option_nlls.append((-answer_log_likelihoods(pipe.model, batch, "mean")).tolist())
    return answers, second, option_nlls


def _task_utils():
    spec = importlib.util.spec_from_file_location("lmms_task_utils", TASKS / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


@pytest.mark.slow
def test_lmms_eval_scores_a_llavidal_model_through_the_adapter(two_cue_model, adapter_site, lmms_eval_site,
                                                                llavidal_plugins, one_torch_thread, tmp_path):
    model_dir, videos, skeletons = two_cue_model
    answers, second, option_nlls = expected_outputs(model_dir, videos, skeletons, llavidal_plugins)
    best = [min(range(len(CHOICES)), key=nlls.__getitem__) for nlls in option_nlls]
    worst = [max(range(len(CHOICES)), key=nlls.__getitem__) for nlls in option_nlls]
    assert best[3] != worst[3]

    data = tmp_path / "data"  # the tasks' data_files are relative: lmms-eval runs in this folder
    data.mkdir()
    docs = [{"video": video, "skeleton": skeleton, "question": question}
            for video, skeleton, question in zip(videos, skeletons, QUESTIONS)]
    write_jsonl(data / "tiny_qa.jsonl", [{**doc, "answer": answer if i < 3 else f"not {answer}"}
                                         for i, (doc, answer) in enumerate(zip(docs, answers))])
    write_jsonl(data / "tiny_mcq.jsonl", [{**doc, "choices": CHOICES, "label": best[i] if i < 3 else worst[i]}
                                          for i, doc in enumerate(docs)])
    write_jsonl(data / "tiny_rounds.jsonl", [{**doc, "answers": [a, b if i < 3 else f"not {b}"]}
                                             for i, (doc, a, b) in enumerate(zip(docs, answers, second))])
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLAVIDAL_")}
    env.update(PYTHONPATH=os.pathsep.join([str(adapter_site), str(lmms_eval_site)]),
               LLAVIDAL_LOAD_PLUGINS=f"llavidal-video,{FAKE_CUE_DISTRIBUTION}",
               HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", "llavidal",
         "--model_args", f"pretrained={model_dir},device=cpu,cue_fields=fake:skeleton",
         "--tasks", "llavidal_tiny_qa,llavidal_tiny_mcq,llavidal_tiny_rounds", "--include_path", str(TASKS),
         "--batch_size", "2", "--output_path", str(out), "--log_samples"],
        cwd=data, env=env, capture_output=True, text=True, timeout=600,
    )
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, log
    results_files = list(out.rglob("*_results.json"))
    assert len(results_files) == 1, log  # lmms-eval logs a failed evaluation and still exits 0
    written = json.loads(results_files[0].read_text())
    assert written["config"]["model"] == "llavidal"
    assert written["results"]["llavidal_tiny_qa"]["exact_match,none"] == 0.75
    assert written["results"]["llavidal_tiny_mcq"]["acc,none"] == 0.75
    assert written["results"]["llavidal_tiny_rounds"]["rounds_match,none"] == 0.75

    def samples(task):
        (path,) = out.rglob(f"*_samples_{task}.jsonl")
        return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda s: s["doc_id"])

    assert [s["filtered_resps"] for s in samples("llavidal_tiny_qa")] == answers
    assert [s["filtered_resps"] for s in samples("llavidal_tiny_rounds")] == [list(p) for p in zip(answers, second)]
    scored = [[float(value) for value, _ in s["filtered_resps"]] for s in samples("llavidal_tiny_mcq")]
    assert torch.allclose(torch.tensor(scored), torch.tensor(option_nlls), atol=1e-4)


@pytest.fixture
def adapter_requests(monkeypatch):
    monkeypatch.syspath_prepend(str(ADAPTER))
    import llavidal_lmms_eval.requests

    return llavidal_lmms_eval.requests


def test_generation_kwargs_become_pipeline_settings(adapter_requests):
    settings, ignored = adapter_requests.generation_settings(
        {"until": ["\n\n", ""], "max_new_tokens": 16, "temperature": 0, "top_p": 0.9, "num_beams": 2,
         "image_aspect_ratio": "pad"}, 256)
    assert settings == {"stop": ("\n\n",), "max_new_tokens": 16, "do_sample": False, "num_beams": 2}
    assert ignored == ["image_aspect_ratio"]
    settings, _ = adapter_requests.generation_settings({"until": "ASSISTANT:", "temperature": 0.7, "top_p": 0.9}, 8)
    assert settings == {"stop": ("ASSISTANT:",), "max_new_tokens": 8, "do_sample": True, "temperature": 0.7,
                        "top_p": 0.9}
    settings, _ = adapter_requests.generation_settings({"do_sample": True}, 8)
    assert settings["temperature"] == 1.0
    with pytest.raises(ValueError, match="max_new_tokens must be positive"):
        adapter_requests.generation_settings({"max_new_tokens": -1}, 8)


def test_each_cue_gets_the_video_or_its_doc_field(adapter_requests):
    doc = {"video": "relative.mp4", "pose": "a.skeleton", "boxes": "b.json", "empty": ""}
    cues, video_cues = ("video", "pose", "object"), ("video", "object")
    assert adapter_requests.cue_inputs("/data/v.mp4", doc, cues, video_cues, {}) == {
        "video": "/data/v.mp4", "pose": "a.skeleton", "object": "/data/v.mp4"}
    fields = adapter_requests.parse_cue_fields("object:boxes; pose:empty")
    assert fields == {"object": "boxes", "pose": "empty"}
    assert adapter_requests.cue_inputs(None, doc, cues, video_cues, fields) == {"object": "b.json"}
    with pytest.raises(ValueError, match="is not CUE:FIELD"):
        adapter_requests.parse_cue_fields("pose")


def test_a_doc_has_at_most_one_video_path(adapter_requests):
    from llavidal_core.errors import LlavidalError

    assert adapter_requests.video_path(["/v.mp4"], "t/test doc 0") == "/v.mp4"
    assert adapter_requests.video_path(Path("/v.mp4"), "t/test doc 0") == "/v.mp4"
    assert adapter_requests.video_path([], "t/test doc 0") is None
    with pytest.raises(LlavidalError, match="t/test doc 1: 2 visuals"):
        adapter_requests.video_path(["/a.mp4", "/b.mp4"], "t/test doc 1")
    with pytest.raises(LlavidalError, match="a visual of type dict"):
        adapter_requests.video_path([{"array": [0.0]}], "t/test doc 2")
