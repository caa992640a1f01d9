"""The training dataset: feature sources, missing cue files (both policies), over-long samples, placeholders of
unused cues, modality dropout and the collator."""

import json

import numpy
import pytest
import torch

from llavidal_core.data.dataset import (SKIP_ALL_CUES_MISSING, SKIP_NO_USED_CUE, SKIP_TOO_LONG, InstructionCollator,
                                        InstructionDataset, LegacyFeatureSource, StoreFeatureSource,
                                        open_feature_source)
from llavidal_core.data.instructions import InstructionFormatError, read_instruction_file
from llavidal_core.errors import LlavidalError
from llavidal_core.features import FeatureStore
from llavidal_core.legacy_features import write_legacy_features
from llavidal_core.processing import LlavidalProcessor
from llavidal_core.testing.tiny_fusion import TINY_CUES, TINY_OBJECT, TINY_POSE
from llavidal_core.testing.tiny_models import build_tiny_tokenizer

ALL = "<video><object><human_pose>"


@pytest.fixture(scope="module")
def processor():
    return LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=256)


def record(video_id, question, answer="The person drinks water from a cup."):
    return {"id": video_id, "video": f"{video_id}.pkl", "object": f"{video_id}_object.pkl",
            "pose": f"{video_id}_pose.pkl",
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def write_samples(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return read_instruction_file(path)


@pytest.fixture
def store(tmp_path):
    store = FeatureStore(tmp_path / "features")
    store.write("a", "video", torch.ones(5, 12))
    store.write("a", "pose", torch.ones(3, 7))
    store.write("a", "object", torch.ones(2, 2, 6))  # 2 objects x 2 rows
    store.write("b", "video", torch.ones(5, 12))     # b has no pose and no object features
    return store


def dataset(samples, processor, store, cues=("video", "object", "pose"), **kwargs):
    sources = {cue: StoreFeatureSource(store, cue) for cue in cues}
    return InstructionDataset(samples, processor, sources, cues, **kwargs)


def test_store_samples_come_with_every_cue_and_objects_flattened(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [record("a", f"What is the person doing?\n{ALL}")])
    data = dataset(samples, processor, store)
    item = data[0]
    assert {cue: tuple(t.shape) for cue, t in item["cue_features"].items()} == {
        "video": (5, 12), "object": (4, 6), "pose": (3, 7)}
    assert data.report.kept == 1 and data.report.num_skipped == 0
    batch = InstructionCollator(processor)([item, item])
    assert batch["cue_features"]["object"].shape == (2, 4, 6)
    patch = processor.cue_token_ids["object"]["patch"]
    assert int((batch["input_ids"] == patch).sum()) == 8


def test_cached_features_are_read_once_and_equal_the_files(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [record("a", f"What is the person doing?\n{ALL}")] * 2)
    cached = dataset(samples, processor, store, cache_features=True)
    plain = dataset(samples, processor, store)
    first = cached[0]["cue_features"]
    assert all(torch.equal(first[c], plain[0]["cue_features"][c]) for c in first)
    store.path_for("a").unlink()  # later epochs no longer touch the file
    assert all(torch.equal(cached[1]["cue_features"][c], first[c]) for c in first)
    with pytest.raises(LlavidalError):
        plain[1]


def test_missing_cue_file_is_dropped_by_default(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [record("b", f"{ALL}\nWhat is the person doing?")])
    data = dataset(samples, processor, store)
    item = data[0]
    assert set(item["cue_features"]) == {"video"}
    assert item["conversation"][0]["value"] == "<video>\nWhat is the person doing?"
    assert data.report.missing_dropped == {"object": 1, "pose": 1}
    assert "missing feature file, placeholder dropped [pose]: 1" in "\n".join(data.report.lines())


def test_missing_cue_file_gets_zeros_like_the_original(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [record("b", f"{ALL}\nWhat is the person doing?")])
    data = dataset(samples, processor, store, missing_cue="zeros")
    features = data[0]["cue_features"]
    assert tuple(features["pose"].shape) == (TINY_POSE.num_tokens, TINY_POSE.feature_dim)
    assert tuple(features["object"].shape) == (TINY_OBJECT.tokens_per_item, TINY_OBJECT.feature_dim)
    assert not features["pose"].any() and not features["object"].any()
    assert data[0]["conversation"][0]["value"].startswith(ALL)
    assert data.report.missing_zero_filled == {"object": 1, "pose": 1}
    batch = InstructionCollator(processor)([data[0]])
    assert batch["cue_features"]["pose"].shape == (1, 3, 7)


@pytest.mark.parametrize("policy", ["drop", "zeros"])
def test_a_sample_without_any_cue_file_is_skipped_under_both_policies(tmp_path, processor, store, policy):
    samples = write_samples(tmp_path / "train.jsonl", [record("a", f"Q?\n{ALL}"), record("zzz", f"Q?\n{ALL}")])
    data = dataset(samples, processor, store, missing_cue=policy)
    assert len(data) == 1 and data.report.skipped == {SKIP_ALL_CUES_MISSING: 1}
    assert "sample 1 (zzz)" in "\n".join(data.report.lines())


def test_over_long_samples_are_skipped_not_cut_through_a_placeholder(tmp_path, store):
    short = LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=200)
    long_question = "Describe the actions in order. " * 10
    samples = write_samples(tmp_path / "train.jsonl", [
        record("a", f"{long_question}\n{ALL}"),  # the placeholders come after the cut
        record("a", f"{ALL}\n{long_question}"),  # placeholders first: plain text is truncated, as the original
        record("a", f"{ALL}\nWave?", answer="wave"),
    ])
    data = dataset(samples, short, store)
    assert data.report.skipped == {SKIP_TOO_LONG: 1} and data.report.kept == 2
    assert data.report.skipped_examples[SKIP_TOO_LONG] == "sample 0 (a)"
    assert max(item.num_tokens for item in data.items) <= 200


def test_placeholders_of_unused_cues_are_removed_and_counted(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [
        record("a", f"{ALL}\nWhat is the person doing?"),
        record("a", "<object>\nWhich object does the person hold?"),  # names only an unused cue
        record("a", "Which object does the person hold?"),            # text only: kept
    ])
    data = dataset(samples, processor, store, cues=("video",))
    assert [item.conversation[0]["value"] for item in data.items] == [
        "<video>\nWhat is the person doing?", "Which object does the person hold?"]
    assert data.report.unused_placeholders_removed == {"object": 2, "pose": 1}
    assert data.report.skipped == {SKIP_NO_USED_CUE: 1}
    assert set(data[0]["cue_features"]) == {"video"} and data[1]["cue_features"] == {}
    batch = InstructionCollator(processor)([data[0], data[1]])
    assert set(batch["cue_features"]) == {"video"}


def test_legacy_pkl_folders_are_read_by_the_records_file_names(tmp_path, processor):
    folder = tmp_path / "legacy"
    folder.mkdir()
    write_legacy_features(folder / "v1.pkl", numpy.full((5, 12), 2, dtype=numpy.float16))
    write_legacy_features(folder / "v1_object.pkl", numpy.ones((3, 2, 6), dtype=numpy.float32))
    source = open_feature_source(folder, "video")
    assert isinstance(source, LegacyFeatureSource)
    samples = write_samples(tmp_path / "train.jsonl", [record("v1", "<video><object>\nQ?")])
    data = InstructionDataset(samples, processor, {"video": source, "object": open_feature_source(folder, "object")},
                              ["video", "object"])
    features = data[0]["cue_features"]
    assert features["video"].dtype == torch.float32 and float(features["video"][0, 0]) == 2.0
    assert tuple(features["object"].shape) == (6, 6)


def test_feature_width_mismatch_is_an_error_naming_the_file(tmp_path, processor):
    store = FeatureStore(tmp_path / "features")
    store.write("a", "video", torch.ones(5, 11))
    samples = write_samples(tmp_path / "train.jsonl", [record("a", "<video>\nQ?")])
    with pytest.raises(Exception, match=r"a\.safetensors \[video\].*width|a\.safetensors \[video\].*shape"):
        dataset(samples, processor, store, cues=("video",))


def test_malformed_json_lines_name_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(record("a", "<video>\nQ?")) + "\n{not json\n")
    with pytest.raises(InstructionFormatError, match="line 2 is not valid JSON"):
        read_instruction_file(path)


def test_modality_dropout_is_seeded_per_sample_cue_and_epoch(tmp_path, processor, store):
    samples = write_samples(tmp_path / "train.jsonl", [record("a", f"Q?\n{ALL}")] * 40)
    data = dataset(samples, processor, store, dropout={"video": 0.5}, seed=3)

    def dropped():
        return [not data[i]["cue_features"]["video"].any() for i in range(len(data))]

    first = dropped()
    assert 5 < sum(first) < 35
    assert dropped() == first
    assert all(data[i]["cue_features"]["pose"].all() for i in range(len(data)))
    data.set_epoch(1)
    assert dropped() != first


def test_raw_videoinstruct_files_are_converted_on_reading(tmp_path, processor, store):
    from llavidal_core.data.dataset import read_training_samples

    raw = tmp_path / "videoinstruct.json"
    raw.write_text(json.dumps([{"video_id": "a", "q": "What is the person doing?", "a": "wave"},
                               {"video_id": "b", "q": "Which object?", "a": "a cup"}]))
    samples = read_training_samples(raw)
    assert [s.conversation[0]["value"] for s in samples] == ["What is the person doing?\n<video>",
                                                             "<video>\nWhich object?"]
    data = dataset(samples, processor, store, cues=("video",))
    assert len(data) == 2 and set(data[1]["cue_features"]) == {"video"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"id": "a"}]))
    with pytest.raises(InstructionFormatError, match="record 0: missing field"):
        read_training_samples(broken)


def test_feature_statistics_count_each_file_once_and_need_one(tmp_path, processor, store):
    store.write("b", "video", torch.full((5, 12), 3.0))
    samples = write_samples(tmp_path / "train.jsonl", [record("a", f"Q1\n{ALL}"), record("a", f"Q2\n{ALL}"),
                                                       record("b", f"Q3\n{ALL}")])
    data = dataset(samples, processor, store, missing_cue="zeros")
    mean, std, rows = data.feature_statistics("video")
    assert rows == 10  # a and b once each, though a is used twice
    assert torch.allclose(mean, torch.full((12,), 2.0)) and torch.allclose(std, torch.ones(12))
    with pytest.raises(LlavidalError, match="cue 'pose': no sample has a feature file"):
        dataset(samples[2:], processor, store, missing_cue="zeros").feature_statistics("pose")  # b: zeros only
