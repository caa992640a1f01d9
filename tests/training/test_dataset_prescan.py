"""The training pre-scan against bad feature files: NaN or inf, corrupt files, and data files naming feature files
outside their folder. Each such sample is skipped, counted with its reason and an example naming the file,
before training starts; nothing outside the folder is opened."""

import json
import pickle

import numpy
import pytest
import torch
from safetensors.torch import save_file

from llavidal_core.data.dataset import (SKIP_NON_FINITE, SKIP_OUTSIDE_FOLDER, SKIP_UNREADABLE, InstructionDataset,
                                        open_feature_source)
from llavidal_core.data.instructions import InstructionFormatError, read_instruction_file
from llavidal_core.features import FeatureStore
from llavidal_core.legacy_features import write_legacy_features
from llavidal_core.processing import LlavidalProcessor
from llavidal_core.testing.tiny_fusion import TINY_CUES
from llavidal_core.testing.tiny_models import build_tiny_tokenizer


@pytest.fixture(scope="module")
def processor():
    return LlavidalProcessor(build_tiny_tokenizer(), TINY_CUES, model_max_length=256)


def conversation(question):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": "The person drinks water."}]


def samples_of(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return read_instruction_file(path)


def test_nan_and_corrupt_store_files_are_skipped_with_their_reasons(tmp_path, processor):
    store = FeatureStore(tmp_path / "features")
    store.write("good", "video", torch.ones(5, 12))
    nan = torch.ones(5, 12)
    nan[2, 2] = float("nan")
    save_file({"video": nan}, str(store.path_for("nan")),  # as an older llavidal, or another tool, could write it
              metadata={"format": "llavidal-features", "format_version": "1", "video.shape": "[5, 12]"})
    store.write("cut", "video", torch.ones(5, 12))
    store.path_for("cut").write_bytes(store.path_for("cut").read_bytes()[:-10])
    records = [{"id": video_id, "conversations": conversation("<video>\nWhat happens?")}
               for video_id in ("good", "nan", "cut", "nan", "good")]
    samples = samples_of(tmp_path / "train.jsonl", records)

    data = InstructionDataset(samples, processor, {"video": open_feature_source(store.root, "video")}, ["video"])

    assert (data.report.samples, data.report.kept) == (5, 2)
    assert dict(data.report.skipped) == {SKIP_NON_FINITE: 2, SKIP_UNREADABLE: 1}
    examples = data.report.skipped_examples
    assert examples[SKIP_NON_FINITE].startswith("sample 1 (nan): ")
    assert f"{store.path_for('nan')} [video]: 1 of 60 values are not finite" in examples[SKIP_NON_FINITE]
    assert f"{store.path_for('cut')}: not a readable safetensors file" in examples[SKIP_UNREADABLE]
    assert [bool(torch.isfinite(data[i]["cue_features"]["video"]).all()) for i in range(len(data))] == [True, True]
    assert any("values are not finite" in line for line in data.report.lines())


def test_legacy_files_outside_the_folder_are_never_opened(tmp_path, processor):
    folder, outside = tmp_path / "legacy", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    write_legacy_features(folder / "v1.pkl", numpy.ones((5, 12), numpy.float16))
    write_legacy_features(folder / "v1_object.pkl", numpy.ones((1, 2, 6), numpy.float32))
    write_legacy_features(outside / "x.pkl", numpy.ones((5, 12), numpy.float16))
    write_legacy_features(outside / "x_object.pkl", numpy.ones((1, 2, 6), numpy.float32))
    pose_nan = numpy.ones((3, 7), numpy.float32)
    pose_nan[0, 0] = numpy.inf
    (folder / "v1_pose.pkl").write_bytes(pickle.dumps(pose_nan, protocol=4))
    question = "<video><object>\nWhat happens?"
    records = [
        {"id": "v1", "video": "v1.pkl", "object": "v1_object.pkl", "conversations": conversation(question)},
        {"id": "up", "video": "v1.pkl", "object": "../outside/x_object.pkl", "conversations": conversation(question)},
        {"id": "abs", "video": str(outside / "x.pkl"), "object": "v1_object.pkl",
         "conversations": conversation(question)},
        {"id": "in", "video": "v1.pkl", "object": "sub/../v1_object.pkl", "conversations": conversation(question)},
        {"id": "inf", "video": "v1.pkl", "pose": "v1_pose.pkl",
         "conversations": conversation("<video><human_pose>\nWhat happens?")},
    ]
    (folder / "sub").mkdir()
    samples = samples_of(tmp_path / "train.jsonl", records)
    sources = {cue: open_feature_source(folder, cue) for cue in ("video", "object", "pose")}

    data = InstructionDataset(samples, processor, sources, ["video", "object", "pose"])

    assert [item.sample.sample_id for item in data.items] == ["v1", "in"]
    assert dict(data.report.skipped) == {SKIP_OUTSIDE_FOLDER: 2, SKIP_NON_FINITE: 1}
    assert "'../outside/x_object.pkl' is outside the features folder" in data.report.skipped_examples[
        SKIP_OUTSIDE_FOLDER]
    assert "v1_pose.pkl [pose]: 1 of 21 values are not finite" in data.report.skipped_examples[SKIP_NON_FINITE]


def test_a_video_field_going_up_refuses_the_instruction_file(tmp_path):
    records = [{"id": "up", "video": "../outside/x.pkl", "conversations": conversation("<video>\nQ?")}]
    with pytest.raises(InstructionFormatError, match=r"record|line 1.*'\.\.' segment"):
        samples_of(tmp_path / "train.jsonl", records)
