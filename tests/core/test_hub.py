"""Hub I/O: full and adapter-only round trips, loading by repo id from an offline cache, push_to_hub, the card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from llavidal_core.modeling import LlavidalForConditionalGeneration, LlavidalProcessor
from llavidal_core.modeling.adapter import AdapterError
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_OBJECT, TINY_VIDEO, random_cue_features

FEATURES = [{"video": random_cue_features(TINY_VIDEO), "object": random_cue_features(TINY_OBJECT, 2)}]
CONVERSATION = [[{"from": "human", "value": "<video><object> What is the person doing?"},
                 {"from": "gpt", "value": "The person reads a book"}]]


@pytest.fixture
def fused(tiny_llm):
    """A fusion model wrapped around the saved tiny LM, with trained-looking projectors and cue rows."""
    language_model, tokenizer = tiny_llm
    processor = LlavidalProcessor(tokenizer, TINY_CUES)
    torch.manual_seed(7)
    model = LlavidalForConditionalGeneration.from_language_model(language_model, TINY_CUES, processor.cue_token_ids)
    with torch.no_grad():
        for weight in model._embedding_weights():
            weight[model.config.new_token_ids] += torch.randn(len(model.config.new_token_ids), weight.shape[1])
    return model.eval(), processor


def logits_of(model, processor):
    with torch.no_grad():
        return model(**processor(CONVERSATION, FEATURES)).logits


def test_full_round_trip_by_path(fused, tmp_path):
    from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    model, processor = fused
    model.save_pretrained(tmp_path, processor=processor)

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)

    assert isinstance(loaded, LlavidalForConditionalGeneration) and loaded.config.cue_specs == TINY_CUES
    assert len(AutoTokenizer.from_pretrained(tmp_path)) == len(processor.tokenizer)
    torch.testing.assert_close(logits_of(loaded, loaded_processor), logits_of(model, processor), rtol=0, atol=0)


def test_saved_model_card_lists_cues_and_plugins(fused, tmp_path):
    from huggingface_hub import ModelCard

    model, _ = fused
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()

    data = ModelCard.load(tmp_path / "README.md").data
    assert data.library_name == "llavidal" and data.pipeline_tag == "video-text-to-text"
    assert data.tags == ["llavidal", "video-text-to-text", "cue-video", "cue-object", "cue-pose"]
    assert data.base_model is None  # the base LM is a local folder here, not a Hub id
    assert 'pipe = LlavidalPipeline.from_pretrained("path/to/model")' in card
    for line in ("pip install llavidal-core", "pip install llavidal-video", "pip install llavidal-object",
                 "pip install llavidal-pose"):
        assert line in card.splitlines()
    assert "| video | `<video>` | 5 | 12 | linear | llavidal-video |" in card
    assert "| object | `<object>` | 2 per item | 6 | linear | llavidal-object |" in card
    # none of those plugins is installed here: the model still loads, features are only tensors
    assert LlavidalForConditionalGeneration.from_pretrained(tmp_path).config.cue_names == ("video", "object", "pose")


def test_adapter_round_trip_onto_the_base_lm(fused, tiny_llm_dir, tmp_path):
    model, processor = fused
    model.save_adapter(tmp_path, processor=processor)

    with safe_open(tmp_path / "adapter.safetensors", framework="pt") as reader:
        keys = set(reader.keys())
    assert keys == {"projectors.video.weight", "projectors.video.bias", "projectors.object.weight",
                    "projectors.object.bias", "projectors.pose.weight", "projectors.pose.bias",
                    "input_embeddings.rows", "output_embeddings.rows"}
    assert not (tmp_path / "model.safetensors").exists()
    assert "from_adapter" in (tmp_path / "README.md").read_text()

    explicit = LlavidalForConditionalGeneration.from_adapter(tmp_path, base=tiny_llm_dir)
    named = LlavidalForConditionalGeneration.from_adapter(tmp_path)  # the base it names: tiny_llm_dir
    assert named.config.base_model_name_or_path == str(tiny_llm_dir)
    for loaded in (explicit, named):
        torch.testing.assert_close(logits_of(loaded.eval(), processor), logits_of(model, processor), rtol=0, atol=0)


def test_adapter_refuses_a_base_of_another_size(fused, tmp_path):
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm

    model, _ = fused
    model.save_adapter(tmp_path)
    with pytest.raises(AdapterError, match="the adapter is for hidden size 32, the base LM has 64"):
        LlavidalForConditionalGeneration.from_adapter(tmp_path, base=build_tiny_causal_lm(hidden_size=64))


def test_load_by_repo_id_from_an_offline_cache(fused, tmp_path, offline_hub):
    from transformers import AutoModelForCausalLM, AutoProcessor

    model, processor = fused
    model.save_pretrained(tmp_path / "saved", processor=processor)
    offline_hub.add("org/name", tmp_path / "saved")

    loaded = AutoModelForCausalLM.from_pretrained("org/name")
    loaded_processor = AutoProcessor.from_pretrained("org/name")

    torch.testing.assert_close(logits_of(loaded, loaded_processor), logits_of(model, processor), rtol=0, atol=0)


def test_push_to_hub_uploads_model_processor_and_card(fused, monkeypatch):
    from huggingface_hub import HfApi, ModelCard, RepoUrl

    from llavidal_core.hub import ModelCardError

    model, processor = fused
    uploads = []

    def create_repo(self, repo_id, **kwargs):
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        card = folder / "README.md"
        uploads.append({"repo_id": repo_id, "files": sorted(p.name for p in folder.iterdir()),
                        "card": card.read_text() if card.exists() else None, **kwargs})
        return "commit-url"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)

    report = {"accuracy": {"toy": {"accuracy": 0.75, "ci95": [0.5, 1.0], "n": 8}}, "mode": "loglik",
              "normalize": "mean"}
    assert model.push_to_hub("org/tiny-llavidal", processor=processor) == "commit-url"
    model.push_to_hub("org/tiny-llavidal-adapter", adapter_only=True)
    processor.push_to_hub("org/tiny-llavidal-processor")
    model.push_to_hub("org/tiny-llavidal-carded", processor=processor, license="mit", datasets=["org/adl-x"],
                      eval_report=report)
    with pytest.raises(ModelCardError, match="Hub dataset ids"):
        model.push_to_hub("org/never", datasets=["data/train.json"])
    with pytest.raises(ModelCardError, match="go into a model card"):
        processor.push_to_hub("org/never", license="mit")

    full, adapter, processor_only, carded = uploads
    card = ModelCard(carded["card"])
    assert (card.data.license, card.data.datasets, card.data.model_name) == ("mit", ["org/adl-x"],
                                                                             "org/tiny-llavidal-carded")
    assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == [("toy", 0.75)]
    assert 'from_pretrained("org/tiny-llavidal-carded")' in carded["card"]
    assert full["repo_id"] == "org/tiny-llavidal"
    templates = ["additional_chat_templates", "chat_template.jinja"]  # llavidal's chat templates, in Jinja
    assert full["files"] == ["README.md", *templates, "config.json", "generation_config.json", "model.safetensors",
                             "processor_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert "# org/tiny-llavidal" in full["card"] and 'from_pretrained("org/tiny-llavidal")' in full["card"]
    assert "pip install llavidal-pose" in full["card"]
    assert adapter["files"] == ["README.md", "adapter.safetensors", "config.json"]
    assert 'from_adapter("org/tiny-llavidal-adapter")' in adapter["card"]
    assert processor_only["files"] == [*templates, "processor_config.json", "tokenizer.json", "tokenizer_config.json"]


def test_a_training_run_uploads_a_card_that_names_its_repo(fused, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub import HfApi, ModelCard

    from llavidal_core.training.runner import push_output_folder

    model, processor = fused
    model.save_pretrained(tmp_path, processor=processor)
    uploaded = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: uploaded.update(
        kwargs, card=(Path(kwargs["folder_path"]) / "README.md").read_text()))
    push_output_folder(tmp_path, SimpleNamespace(repo_id="org/run-7", private=True, revision=None), "main")
    assert uploaded["repo_id"] == "org/run-7"
    assert ModelCard(uploaded["card"]).data.model_name == "org/run-7" and 'from_pretrained("org/run-7")' in uploaded["card"]
