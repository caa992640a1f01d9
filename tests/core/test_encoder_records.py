"""Encoder records: how features were made, stored with them, carried into a model, and rebuilt from it."""

import json

import pytest
import torch

from llavidal_core.encoder_records import BUNDLE_FOLDER, EncoderRecord, records_in_store
from llavidal_core.errors import LlavidalError
from llavidal_core.features import FeatureStore
from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder


def test_a_record_round_trips_and_refuses_what_it_cannot_hold():
    record = EncoderRecord(pretrained="openai/clip-vit-large-patch14", options={"num_frames": 16, "pool": "spatial"},
                           dtype="bfloat16")
    assert EncoderRecord.from_json(record.to_json()) == record
    assert EncoderRecord.from_config_value("some/encoder") == EncoderRecord(pretrained="some/encoder")
    with pytest.raises(ValueError, match=r"unknown fields \['frames'\]"):
        EncoderRecord.from_dict({"pretrained": "x", "frames": 16})
    with pytest.raises(ValueError, match="JSON values"):
        EncoderRecord(options={"path": object()})
    with pytest.raises(ValueError, match="bundles 'encoder', which it does not hold"):
        EncoderRecord(options={}, bundled=("encoder",))


def test_bundling_copies_local_model_folders_and_keeps_hub_ids(tmp_path):
    local = tmp_path / "my-clip"
    local.mkdir()
    (local / "config.json").write_text("{}")
    record = EncoderRecord(pretrained=None, options={"encoder": str(local), "detector": "google/owlv2-base",
                                                     "threshold": 0.1},
                           model_options=("encoder", "detector"))
    model = tmp_path / "model"
    bundled = record.bundle(model, "object")
    assert bundled.bundled == ("encoder",)
    assert bundled.options["encoder"] == f"{BUNDLE_FOLDER}/object/encoder"
    assert bundled.options["detector"] == "google/owlv2-base"  # not a folder here: a Hub id, kept
    assert (model / BUNDLE_FOLDER / "object" / "encoder" / "config.json").is_file()
    moved = tmp_path / "moved"
    model.rename(moved)  # the model folder is self-contained: it works wherever it goes
    resolved = bundled.resolve(moved)
    assert resolved.options["encoder"] == str(moved / BUNDLE_FOLDER / "object" / "encoder") and not resolved.bundled
    (moved / BUNDLE_FOLDER / "object" / "encoder" / "config.json").unlink()
    (moved / BUNDLE_FOLDER / "object" / "encoder").rmdir()
    with pytest.raises(LlavidalError, match="encoder folder cue_encoders/object/encoder is missing"):
        bundled.resolve(moved)


def test_an_encoder_loaded_from_a_folder_records_it_and_rebuilds_the_same_features(tmp_path):
    torch.manual_seed(0)
    FakeCueEncoder().save_pretrained(tmp_path / "encoder")
    encoder = FakeCueEncoder.from_pretrained(str(tmp_path / "encoder"))
    record = encoder.encoder_record()
    assert record == EncoderRecord(pretrained=str(tmp_path / "encoder"), dtype="float32")
    assert json.loads(encoder.feature_metadata()["spec"])["name"] == encoder.spec.name
    rebuilt = EncoderRecord.from_json(encoder.feature_metadata()["encoder_record"]).build(FakeCueEncoder)
    assert torch.equal(rebuilt.encode(["a.mp4"])[0], encoder.encode(["a.mp4"])[0])
    assert FakeCueEncoder().encoder_record() is None  # random weights made here cannot be rebuilt


def _write(store, video_id, cue, record):
    metadata = {"encoder_record": record.to_json(), "spec": json.dumps({"description": "made one way"})} \
        if record is not None else {}
    store.write(video_id, cue, torch.zeros(2, 3), metadata)


def test_a_store_s_record_is_the_one_every_file_holds(tmp_path):
    store = FeatureStore(tmp_path / "features")
    one, other = EncoderRecord(pretrained="a", options={"num_frames": 16}), EncoderRecord(pretrained="a",
                                                                                          options={"num_frames": 8})
    assert records_in_store(store.root, "video") == (None, None)
    for video_id in ("v1", "v2"):
        _write(store, video_id, "video", one)
    assert records_in_store(store.root, "video") == (one, {"description": "made one way"})
    _write(store, "v3", "video", other)
    with pytest.raises(LlavidalError, match=r"'v1' and 'v3' were made by different encoders or settings"):
        records_in_store(store.root, "video")
    mixed = FeatureStore(tmp_path / "mixed")
    _write(mixed, "v1", "video", one)
    _write(mixed, "v2", "video", None)
    with pytest.raises(LlavidalError, match="'v2' do not say how they were made"):
        records_in_store(mixed.root, "video")


def test_training_takes_the_records_and_the_description_from_the_features(tmp_path):
    from llavidal_core.cues import CueSpec
    from llavidal_core.training.model_setup import describe_cues_by_their_features, feature_provenance
    from llavidal_core.training.recipe import CueSection, RecipeError

    store = FeatureStore(tmp_path / "features")
    record = EncoderRecord(pretrained="a")
    _write(store, "v1", "video", record)
    provenance = feature_provenance([CueSection(name="video", features=str(store.root)),
                                     CueSection(name="pose", features=None)])
    assert provenance == {"video": (record, {"description": "made one way"})}
    spec = CueSpec(name="video", placeholder="<video>", patch_token="<p>", feature_dim=3, num_tokens=2,
                   description="CLIP ViT-L/14 features of 100 frames")
    described, = describe_cues_by_their_features([spec], provenance)
    assert described.description == "made one way"
    _write(store, "v2", "video", EncoderRecord(pretrained="b"))
    with pytest.raises(RecipeError, match="cues.video.features"):
        feature_provenance([CueSection(name="video", features=str(store.root))])


@pytest.mark.parametrize("folder", ["../../etc", "/etc", "cue_encoders/../../x", "elsewhere/video"])
def test_a_record_cannot_point_its_bundled_folder_outside_the_model(folder):
    with pytest.raises(ValueError, match="is not inside cue_encoders/"):
        EncoderRecord(pretrained=folder, bundled=("pretrained",))


def test_a_record_refuses_an_unknown_dtype():
    with pytest.raises(ValueError, match="dtype must be one of"):
        EncoderRecord(pretrained="a", dtype="int8")


def test_a_local_folder_is_recorded_absolute_so_training_finds_it_from_anywhere(tmp_path, monkeypatch):
    torch.manual_seed(0)
    FakeCueEncoder().save_pretrained(tmp_path / "encoder")
    monkeypatch.chdir(tmp_path)
    encoder = FakeCueEncoder.from_pretrained("encoder")  # relative to this directory
    record = EncoderRecord.from_json(encoder.feature_metadata()["encoder_record"])
    assert record.pretrained == str((tmp_path / "encoder").resolve())
    assert EncoderRecord(pretrained="org/hub-encoder").with_local_folders_absolute().pretrained == "org/hub-encoder"
