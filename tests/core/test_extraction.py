"""What every ``llavidal extract`` command shares: inputs, ids, shards, the errors log, devices."""

import json
import subprocess
import sys

import pytest
import torch

from llavidal_core import __version__

from llavidal_core.devices import choose_device
from llavidal_core.errors import UsageError
from llavidal_core.extraction import (
    ERRORS_FILE,
    collect_inputs,
    distributed_slot,
    has_cue,
    index_by_video_id,
    record_failure,
    shard_for_rank,
)


def is_clip(path):
    return path.suffix == ".mp4"


def touch(*paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_inputs_from_files_folders_and_lists(tmp_path):
    touch(*(tmp_path / name for name in ("videos/a.mp4", "videos/deeper/b.mp4", "videos/notes.txt",
                                         "videos/.hidden.mp4", "videos/.cache/d.mp4", "c.mp4")))
    listing = tmp_path / "more.txt"
    listing.write_text("# a comment\nc.mp4\n\n")
    found = collect_inputs([tmp_path / "videos", listing, tmp_path / "c.mp4"], is_clip)
    assert [p.path.relative_to(tmp_path).as_posix() for p in found] == ["c.mp4", "videos/a.mp4",
                                                                        "videos/deeper/b.mp4"]
    assert [p.video_id for p in found] == ["c", "a", "deeper/b"]
    listing.write_text("absent.mp4\n")
    with pytest.raises(UsageError, match=r"more.txt:1: no such file 'absent.mp4'"):
        collect_inputs([listing], is_clip)
    with pytest.raises(UsageError, match="nowhere: no such file or folder"):
        collect_inputs([tmp_path / "nowhere"], is_clip)


def test_ids_are_paths_under_the_folder_given(tmp_path):
    tsu = tmp_path / "TSU"
    first, second = tsu / "P03/P03T01C05/clips/clip_1.mp4", tsu / "P04/P04T02C01/clips/clip_1.mp4"
    smarthome = tmp_path / "smarthome" / "Makecoffee.Pourgrains_p18_r01_v13_c03.mp4"
    touch(first, second, smarthome)
    assert index_by_video_id(collect_inputs([tsu, smarthome.parent], is_clip)) == {
        "P03/P03T01C05/clips/clip_1": first, "P04/P04T02C01/clips/clip_1": second,
        "Makecoffee.Pourgrains_p18_r01_v13_c03": smarthome}
    assert index_by_video_id(collect_inputs([first], is_clip)) == {"clip_1": first}  # a file alone: its name
    assert index_by_video_id(collect_inputs([smarthome], is_clip), legacy=True) == {"Makecoffee": smarthome}


def test_a_list_is_the_root_of_its_relative_paths(tmp_path):
    tsu = tmp_path / "TSU"
    first, second = tsu / "P03/P03T01C05/clips/clip_1.mp4", tsu / "P04/P04T02C01/clips/clip_1.mp4"
    elsewhere = tmp_path / "elsewhere" / "clip_9.mp4"
    touch(first, second, elsewhere)
    listing = tsu / "test.lst"
    listing.write_text(f"P03/P03T01C05/clips/clip_1.mp4\n./P04/P04T02C01/clips/clip_1.mp4\n{elsewhere}\n")
    assert index_by_video_id(collect_inputs([listing], is_clip)) == {
        "P03/P03T01C05/clips/clip_1": first, "P04/P04T02C01/clips/clip_1": second, "clip_9": elsewhere}
    listing.write_text("../elsewhere/clip_9.mp4\n")
    with pytest.raises(UsageError, match=r"test.lst:1: '../elsewhere/clip_9.mp4' goes up out of the list"):
        collect_inputs([listing], is_clip)


def test_one_file_reached_twice(tmp_path):
    clip = tmp_path / "videos" / "sub" / "a.mp4"
    touch(clip)
    listing = tmp_path / "videos" / "list.txt"
    listing.write_text("sub/a.mp4\n")
    found = collect_inputs([tmp_path / "videos", listing], is_clip)  # the same id both ways: counted once
    assert [(found_input.path, found_input.video_id) for found_input in found] == [(clip, "sub/a")]
    with pytest.raises(UsageError, match=r"given twice with two video ids, 'sub/a' .* and 'a'"):
        collect_inputs([tmp_path / "videos", clip], is_clip)


def test_two_inputs_with_one_id_are_named(tmp_path):
    assert index_by_video_id([tmp_path / "x.mp4"]) == {"x": tmp_path / "x.mp4"}
    first, second = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    touch(first, second)
    with pytest.raises(UsageError, match=r"'clip' \(its path under.*\): .*a/clip.mp4 and .*b/clip.mp4") as error:
        index_by_video_id(collect_inputs([first.parent, second.parent], is_clip))
    assert "first dot" not in str(error.value)
    dotted = tmp_path / "b" / "clip.v2.mp4"
    touch(dotted)
    assert set(index_by_video_id(collect_inputs([tmp_path / "b"], is_clip))) == {"clip", "clip.v2"}
    with pytest.raises(UsageError, match=r"'clip' \(the original's .pkl naming.*first dot\)"):
        index_by_video_id(collect_inputs([tmp_path / "b"], is_clip), legacy=True)
    with pytest.raises(UsageError, match=r"\.mp4.*starts with '\.'"):
        index_by_video_id([tmp_path / ".mp4"])


def test_shards_cover_every_input_once(monkeypatch):
    items = list(range(10))
    assert sorted(sum((shard_for_rank(items, r, 3) for r in range(3)), [])) == items
    with pytest.raises(UsageError):
        shard_for_rank(items, 3, 3)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_slot() == (1, 2, 1)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(UsageError, match="integers"):
        distributed_slot()


def test_failures_are_json_lines(tmp_path):
    record_failure(tmp_path, "/data/bad.mp4", "bad", "moov atom not found", 1)
    record_failure(tmp_path, "/data/worse.mp4", "worse", "no frames", 0)
    lines = [json.loads(line) for line in (tmp_path / ERRORS_FILE).read_text().splitlines()]
    assert [(l["path"], l["video_id"], l["error"], l["rank"]) for l in lines] == [
        ("/data/bad.mp4", "bad", "moov atom not found", 1), ("/data/worse.mp4", "worse", "no frames", 0)]


RERUN_FAILURE = ("import sys; from llavidal_core.extraction import record_failure; "
                 "print(record_failure(sys.argv[1], '/data/bad.mp4', 'bad', 'moov atom not found', 0))")


def test_a_failure_is_recorded_once_per_path_error_and_version(tmp_path):
    errors_path = tmp_path / ERRORS_FILE
    errors_path.write_text(json.dumps({"path": "/data/old.mp4", "video_id": "old", "error": "no frames"}) + "\n"
                           + "{a line cut short by a kill")  # written by an older llavidal, then a torn line
    assert record_failure(tmp_path, "/data/bad.mp4", "bad", "moov atom not found", 0)
    assert not record_failure(tmp_path, "/data/bad.mp4", "bad", "moov atom not found", 1)  # another rank, same
    assert record_failure(tmp_path, "/data/bad.mp4", "bad", "no frames", 0)                 # a new error
    assert record_failure(tmp_path, "/data/old.mp4", "old", "no frames", 0)                 # a new version
    for _ in range(2):  # reruns in fresh processes add nothing
        rerun = subprocess.run([sys.executable, "-c", RERUN_FAILURE, str(tmp_path)], capture_output=True, text=True,
                               check=True)
        assert rerun.stdout.strip() == "False"

    lines = errors_path.read_text().splitlines()
    records = [json.loads(line) for line in lines[2:]]
    assert len(lines) == 5
    assert [(r["path"], r["error"], r["llavidal_version"]) for r in records] == [
        ("/data/bad.mp4", "moov atom not found", __version__), ("/data/bad.mp4", "no frames", __version__),
        ("/data/old.mp4", "no frames", __version__)]


def test_an_unreadable_feature_file_counts_as_not_done(tmp_path):
    from llavidal_core.features import FeatureStore

    store = FeatureStore(tmp_path)
    store.write("good", "video", torch.zeros(2, 3))
    (tmp_path / "broken.safetensors").write_bytes(b"half a file")
    assert has_cue(store, "good", "video") and not has_cue(store, "good", "pose")
    assert not has_cue(store, "broken", "video")


def test_device_follows_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device(None, 0) == torch.device("cpu") and choose_device("auto", 3) == torch.device("cpu")
    with pytest.raises(UsageError, match="CUDA is not available"):
        choose_device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert choose_device("auto", 2) == torch.device("cuda:2")
    assert choose_device("cuda", 5) == torch.device("cuda:1")
    assert choose_device("cuda:3", 0) == torch.device("cuda:3")
