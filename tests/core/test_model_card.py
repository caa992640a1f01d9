"""The model card as `huggingface_hub.ModelCard`: metadata that parses back, the snippet, model-index results
from an `eval mcq --out` report, `llavidal card`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from huggingface_hub import ModelCard

from llavidal_core.cli import main
from llavidal_core.hub import (
    ModelCardError,
    eval_results_from_report,
    hub_model_id,
    model_card,
    update_model_card,
    write_model_card,
)
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_VIDEO, build_tiny_llavidal

REPORT = {  # the shape `llavidal eval mcq --out` writes (two questions files, so an "overall" row too)
    "accuracy": {"ADLMCQ-AR-Charades": {"accuracy": 0.5123, "ci95": [0.47, 0.55], "n": 600},
                 "ADLMCQ-TC-TSU": {"accuracy": 0.41, "ci95": [0.36, 0.46], "n": 300},
                 "overall": {"accuracy": 0.478, "ci95": [0.45, 0.51], "n": 900}},
    "skipped_missing_features": {}, "markdown": "| task | accuracy | 95% CI | n |", "model": "runs/x",
    "mode": "loglik", "normalize": "mean", "files": ["ADLMCQ-AR-Charades.json", "ADLMCQ-TC-TSU.json"],
}


@pytest.fixture(scope="module")
def config():
    model, _ = build_tiny_llavidal()
    return model.config


def with_base(config, base):
    changed = config.__class__.from_dict(config.to_dict())
    changed.base_model_name_or_path = base
    return changed


def saved_card(config, tmp_path, **options):
    path = write_model_card(config, tmp_path, **options)
    return ModelCard.load(path), path.read_text()


def test_saved_card_parses_with_the_metadata(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    card, text = saved_card(with_base(config, "org/base-lm"), tmp_path, repo_id="org/tiny-llavidal",
                            license="apache-2.0", datasets=["org/adl-x", "org/adl-x"])
    data = card.data
    assert data.pipeline_tag == "video-text-to-text" and data.library_name == "llavidal"
    assert data.license == "apache-2.0" and data.base_model == "org/base-lm" and data.datasets == ["org/adl-x"]
    assert data.tags == ["llavidal", "video-text-to-text", "cue-video", "cue-object", "cue-pose"]
    assert data.eval_results is None and "model-index" not in text
    for line in ("pip install llavidal-core", "pip install llavidal-video", "pip install llavidal-object",
                 "pip install llavidal-pose"):
        assert line in text.splitlines()
    assert 'pipe = LlavidalPipeline.from_pretrained("org/tiny-llavidal")' in text.splitlines()
    assert ('print(pipe(video="clip.mp4", inputs={"pose": "clip.skeleton"}, question="What is the person doing?"))'
            in text.splitlines())
    assert ('llavidal ask org/tiny-llavidal clip.mp4 "What is the person doing?" --input pose=clip.skeleton'
            in text.splitlines())
    assert "[`org/adl-x`](https://huggingface.co/datasets/org/adl-x)" in text


def test_a_local_base_is_left_out_of_the_metadata(config, tmp_path, monkeypatch):
    (tmp_path / "tiny" / "llm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for base in ("tiny/llm", str(tmp_path / "tiny" / "llm"), "./tiny/llm"):
        card, text = saved_card(with_base(config, base), tmp_path)
        assert card.data.base_model is None and "base_model:" not in text.split("\n---\n")[0], base
        assert f"Base LM: `{base}` (a local path, not a Hub id" in text
    # no license given and the local base has no card: none is invented, and the card says so
    assert card.data.license is None and "license:" not in text and "No license is recorded" in text


def test_which_names_are_hub_ids(tmp_path, monkeypatch):
    (tmp_path / "runs" / "llm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub_model_id("mmaaz60/LLaVA-7B-Lightening-v1-1") == "mmaaz60/LLaVA-7B-Lightening-v1-1"
    for name in ("runs/llm", "runs/other", "/abs/model", "./x/y", "~/x", "a/b/c", "org/na--me", "org/x.git?",
                 "gpt2", "", None):
        assert hub_model_id(name) is None, name


def test_the_license_defaults_to_the_one_the_base_card_states(config, tmp_path, offline_hub):
    base = tmp_path / "base-card"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: other\nlicense_name: llama2\n"
                                    "license_link: https://ai.meta.com/llama/license/\n---\n# base\n")
    offline_hub.add("org/base-lm", base)
    (tmp_path / "a").mkdir()
    card, text = saved_card(with_base(config, "org/base-lm"), tmp_path / "a")  # from the local Hub cache
    assert (card.data.license, card.data.license_name) == ("other", "llama2")
    assert "the license the base LM's model card states" in text
    (tmp_path / "b").mkdir()
    card, _ = saved_card(with_base(config, str(base)), tmp_path / "b")  # from the local base folder
    assert card.data.license == "other" and card.data.base_model is None
    (tmp_path / "c").mkdir()
    card, text = saved_card(with_base(config, "org/base-lm"), tmp_path / "c", license="mit")  # given: it wins
    assert card.data.license == "mit" and card.data.license_name is None and "base LM's model card" not in text
    (tmp_path / "d").mkdir()
    card, _ = saved_card(with_base(config, "org/uncached-lm"), tmp_path / "d")  # nothing downloaded
    assert card.data.license is None and card.data.base_model == "org/uncached-lm"


def test_datasets_must_be_hub_ids(config):
    with pytest.raises(ModelCardError, match="data/ADL-X/NTU_QA-for-training.json"):
        model_card(config, datasets=["data/ADL-X/NTU_QA-for-training.json"])


def test_eval_results_from_a_report(tmp_path):
    results = eval_results_from_report(REPORT, dataset_types={"ADLMCQ-TC-TSU": "org/adlmcq-tsu"})
    assert [(r.dataset_name, r.dataset_type, r.metric_value) for r in results] == [
        ("ADLMCQ-AR-Charades", "ADLMCQ-AR-Charades", 0.5123), ("ADLMCQ-TC-TSU", "org/adlmcq-tsu", 0.41)]
    assert {(r.task_type, r.metric_type, r.metric_config) for r in results} == {
        ("video-text-to-text", "accuracy", "loglik-mean")}
    assert results[1].metric_name == "Accuracy (95% CI 0.360-0.460, n=300)"
    single = {**REPORT, "accuracy": {"toy": {"accuracy": 0.5, "ci95": [0.1, 0.9], "n": 4}}, "mode": "generate"}
    assert [(r.dataset_name, r.metric_config) for r in eval_results_from_report(single)] == [("toy", "generate")]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"accuracy": {"toy": {"accuracy": 0.5}}}))
    with pytest.raises(ModelCardError, match="ci95"):
        eval_results_from_report(broken)
    with pytest.raises(ModelCardError, match="no accuracy"):
        eval_results_from_report({"markdown": ""})
    with pytest.raises(ModelCardError, match="no such evaluation report"):
        eval_results_from_report(tmp_path / "missing.json")


def test_the_card_carries_the_report_in_its_model_index(config, tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(REPORT))
    card, text = saved_card(config, tmp_path, repo_id="org/tiny-llavidal", eval_report=report)
    assert card.data.model_name == "org/tiny-llavidal" and card.data.metrics == ["accuracy"]
    assert [(r.dataset_name, r.metric_value, r.metric_type) for r in card.data.eval_results] == [
        ("ADLMCQ-AR-Charades", 0.5123, "accuracy"), ("ADLMCQ-TC-TSU", 0.41, "accuracy")]
    assert "model-index:" in text and "| ADLMCQ-TC-TSU | 0.410 | loglik-mean |" in text


def test_adapter_card(config, tmp_path):
    card, text = saved_card(with_base(config, "org/base-lm"), tmp_path, repo_id="org/adapter", adapter_only=True)
    assert card.data.base_model == "org/base-lm" and card.data.get("base_model_relation") == "adapter"
    assert 'LlavidalForConditionalGeneration.from_adapter("org/adapter")' in text
    assert 'LlavidalPipeline(model, LlavidalProcessor.from_pretrained("path/to/processor"))' in text
    (tmp_path / "processor_config.json").write_text("{}")
    _, text = saved_card(config, tmp_path, repo_id="org/adapter", adapter_only=True)
    assert 'LlavidalProcessor.from_pretrained("org/adapter")' in text and "LoRA" not in text
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    _, text = saved_card(config, tmp_path, repo_id="org/adapter", adapter_only=True)
    assert "in `lora/`, a LoRA of the LM" in text


def test_a_pose_only_model_is_asked_with_its_input():
    pose_only = [spec for spec in TINY_CUES if spec.name == "pose"]
    model, _ = build_tiny_llavidal(cues=pose_only)
    text = str(model_card(model.config, "org/pose"))
    assert 'print(pipe(inputs={"pose": "clip.skeleton"}, question="What is the person doing?"))' in text
    assert 'llavidal ask org/pose "What is the person doing?" --input pose=clip.skeleton' in text


def test_update_keeps_what_the_card_recorded(config, tmp_path):
    config.save_pretrained(tmp_path)
    write_model_card(config, tmp_path, repo_id="org/tiny-llavidal", license="cc-by-4.0", datasets=["org/adl-x"],
                     eval_report=REPORT)
    later = {**REPORT, "accuracy": {"ADLMCQ-TC-TSU": {"accuracy": 0.6, "ci95": [0.5, 0.7], "n": 300},
                                    "ADLMCQ-AR-Smarthome": {"accuracy": 0.3, "ci95": [0.2, 0.4], "n": 200}}}
    card = ModelCard.load(update_model_card(tmp_path, eval_reports=[later]))
    assert card.data.license == "cc-by-4.0" and card.data.datasets == ["org/adl-x"]
    assert card.data.model_name == "org/tiny-llavidal"
    assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == [
        ("ADLMCQ-AR-Charades", 0.5123), ("ADLMCQ-TC-TSU", 0.6), ("ADLMCQ-AR-Smarthome", 0.3)]
    assert 'LlavidalPipeline.from_pretrained("org/tiny-llavidal")' in card.text


VIDEO = dataclasses.replace(TINY_VIDEO, num_tokens=2, feature_dim=4)


def test_eval_mcq_report_then_llavidal_card(tmp_path, capsys, llavidal_plugins):
    from llavidal_core.features import FeatureStore

    model, processor = build_tiny_llavidal(cues=(VIDEO,), seed=3)
    model.save_pretrained(tmp_path / "model", processor=processor)
    store = FeatureStore(tmp_path / "features")
    records = []
    for index in range(4):
        store.write(f"clip_{index}", "video", torch.randn(VIDEO.num_tokens, VIDEO.feature_dim))
        records.append({"video_filename": f"clip_{index}.mp4", "question": "What is the person doing?",
                        "answer_choices": {"A": "wave", "B": "clap"}, "ground_truth_letter": "AB"[index % 2]})
    (tmp_path / "toy.json").write_text(json.dumps(records))
    report = tmp_path / "report.json"
    assert main(["eval", "mcq", str(tmp_path / "model"), "--questions", str(tmp_path / "toy.json"),
                 "--features", str(tmp_path / "features"), "--out", str(report)]) == 0
    accuracy = json.loads(report.read_text())["accuracy"]["toy"]["accuracy"]
    assert f"llavidal card {tmp_path / 'model'} --eval {report}" in capsys.readouterr().err

    assert main(["card", str(tmp_path / "model"), "--eval", str(report), "--license", "mit",
                 "--dataset", "org/adl-x", "--eval-dataset", "toy=org/toy-mcq"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'model' / 'README.md'}: model card written (license: mit;" in out
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.license == "mit" and card.data.datasets == ["org/adl-x"]
    assert card.data.pipeline_tag == "video-text-to-text" and card.data.tags[-1] == "cue-video"
    [result] = card.data.eval_results
    assert (result.dataset_name, result.dataset_type, result.metric_value) == ("toy", "org/toy-mcq",
                                                                               round(accuracy, 4))
    assert card.data.model_name == "model"

    assert main(["card", str(tmp_path / "model"), "--dataset", "data/train.json"]) == 2
    assert "Hub dataset ids" in capsys.readouterr().err
    assert main(["card", str(tmp_path / "nothing")]) == 2
    assert main(["card", str(tmp_path / "model"), "--eval", str(tmp_path / "toy.json")]) == 2
    assert "not an evaluation report" in capsys.readouterr().err
    assert ModelCard.load(tmp_path / "model" / "README.md").data.license == "mit"  # untouched by the failures
