"""``--detector annotations:DIR``: a dataset's own object boxes instead of OWLv2, through the same chain."""

import json

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.errors import LlavidalError
from llavidal_core.features import FeatureStore
from llavidal_video.testing.videos import write_test_video
from llavidal_object.annotations import AnnotationFolder
from llavidal_object.encoder import ObjectCueEncoder

TRACKS = [{"label": "cup", "first_frame": 0, "boxes": [[4, 4, 30, 30]] * 12},
          {"label": "book", "first_frame": 2, "boxes": [[20, 10, 60, 40]] * 8}]


@pytest.fixture
def annotated_videos(tmp_path):
    videos, annotations = tmp_path / "videos", tmp_path / "annotations"
    videos.mkdir()
    annotations.mkdir()
    for name in ("a", "b"):
        write_test_video(videos / f"{name}.mp4", num_frames=12)
    (annotations / "a.json").write_text(json.dumps(TRACKS))
    return videos, annotations


def test_annotated_boxes_give_one_track_per_annotated_object(annotated_videos, tiny_clip_dir):
    videos, annotations = annotated_videos
    encoder = ObjectCueEncoder(tagger=None, detector=f"annotations:{annotations}", encoder=str(tiny_clip_dir),
                               num_frames=12)
    result, _ = encoder.extract(str(videos / "a.mp4"))
    assert sorted(result.tags) == ["book", "cup"] and result.features.shape[:2] == (2, 8)
    assert {t["label"] for t in result.trajectories()} == {"book", "cup"}
    assert "annotated boxes" in encoder.spec.description
    record = encoder.encoder_record()
    assert record.options["detector"] == f"annotations:{annotations.resolve()}" and record.pretrained is None
    rebuilt = record.build(ObjectCueEncoder)  # what a model trained on these features rebuilds
    assert torch.equal(rebuilt.encode([str(videos / "a.mp4")])[0], encoder.encode([str(videos / "a.mp4")])[0])
    with pytest.raises(LlavidalError, match=r"b.mp4: no object annotations for it \(.*b.json does not exist\)"):
        encoder.extract(str(videos / "b.mp4"))


def test_malformed_annotations_name_the_file_and_the_track(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps([{"label": "cup", "first_frame": 0, "boxes": [[5, 5, 1, 1]]}]))
    with pytest.raises(LlavidalError, match=r"v.json: track 0 \('cup'\) has .* x1 > x0"):
        AnnotationFolder(f"annotations:{tmp_path}").for_video("v.mp4")
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(LlavidalError, match="w.json: cannot read object annotations"):
        AnnotationFolder(f"annotations:{tmp_path}").for_video("w.avi")
    with pytest.raises(LlavidalError, match="no such folder of object annotations"):
        AnnotationFolder(f"annotations:{tmp_path / 'missing'}")


def test_extract_object_with_annotations_writes_the_annotated_and_reports_the_rest(annotated_videos, tiny_clip_dir,
                                                                                 object_plugin, tmp_path):
    videos, annotations = annotated_videos
    out = tmp_path / "features"
    code = main(["extract", "object", str(videos), "--out", str(out), "--detector", f"annotations:{annotations}",
                 "--encoder", str(tiny_clip_dir), "--num-frames", "12", "--device", "cpu"])
    assert code == 3  # b.mp4 has no annotation file: reported, a.mp4 written
    store = FeatureStore(out, create=False)
    assert store.video_ids() == ["a"] and store.read("a", "object").shape[:2] == (2, 8)
    assert "encoder_record" in store.metadata("a", "object")
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in errors] == ["b"] and "no object annotations" in errors[0]["error"]
