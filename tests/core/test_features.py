"""The safetensors feature store: exact round trips, per-cue updates, atomic writes and clear errors."""

import argparse
import json
import logging
import re
import subprocess
import sys

import pytest
import safetensors
import torch

from llavidal_core import __version__, atomic_files
from llavidal_core.errors import FeatureStoreError
from llavidal_core.features import CorruptFeatureFileError, FeatureStore
from llavidal_core.finite import NonFiniteError


def exactly_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def temp_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_round_trip_keeps_dtype_and_values_exactly(tmp_path, dtype):
    store = FeatureStore(tmp_path)
    generator = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        tensor = (torch.randn(356, 1024, generator=generator) * 1000).to(dtype)
    else:
        tensor = torch.randint(-(2**62), 2**62, (356, 16), generator=generator, dtype=dtype)

    path = store.write("nasa_13013", "video", tensor)

    assert path == tmp_path / "nasa_13013.safetensors"
    read = store.read("nasa_13013", "video")
    assert exactly_equal(read, tensor)
    if dtype == torch.bfloat16:  # compare bits too: equality of values alone would allow -0.0 == 0.0
        assert torch.equal(read.view(torch.int16), tensor.view(torch.int16))
    assert store.metadata("nasa_13013", "video")["dtype"] == str(dtype).removeprefix("torch.")


def test_non_contiguous_tensors_are_stored_with_their_logical_layout(tmp_path):
    store = FeatureStore(tmp_path)
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4).T

    store.write("v", "pose", tensor)

    assert exactly_equal(store.read("v", "pose"), tensor.contiguous())


def test_metadata_is_kept_with_the_store_s_own_keys(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("v", "video", torch.zeros(356, 1024, dtype=torch.float16), {"encoder": "openai/clip", "frames": "100"})

    assert store.metadata("v", "video") == {
        "encoder": "openai/clip",
        "frames": "100",
        "dtype": "float16",
        "shape": "[356, 1024]",
        "llavidal_version": __version__,
    }
    with safetensors.safe_open(store.path_for("v"), framework="pt") as handle:
        header = handle.metadata()
    assert header["format"] == "llavidal-features"
    assert header["format_version"] == "1"
    assert header["video.encoder"] == "openai/clip"


def test_metadata_values_must_be_strings(tmp_path):
    store = FeatureStore(tmp_path)
    with pytest.raises(TypeError, match="'frames'"):
        store.write("v", "video", torch.zeros(2), {"frames": 100})
    assert "v" not in store


def test_adding_a_cue_keeps_the_other_cues_tensor_and_metadata(tmp_path):
    store = FeatureStore(tmp_path)
    video = torch.randn(356, 1024).to(torch.float16)
    pose = torch.randn(256, 216).to(torch.bfloat16)
    store.write("v", "video", video, {"encoder": "clip"})
    video_metadata = store.metadata("v", "video")

    store.write("v", "pose", pose, {"backbone": "poseclip"})

    assert store.cues("v") == ["pose", "video"]
    assert exactly_equal(store.read("v", "video"), video)
    assert store.metadata("v", "video") == video_metadata
    assert exactly_equal(store.read("v", "pose"), pose)
    assert store.metadata("v", "pose")["backbone"] == "poseclip"
    everything = store.read_all("v")
    assert sorted(everything) == ["pose", "video"]
    assert exactly_equal(everything["pose"], pose)


def test_rewriting_a_cue_replaces_its_tensor_and_metadata_only(tmp_path):
    store = FeatureStore(tmp_path)
    video = torch.ones(4, 8)
    store.write("v", "video", video, {"encoder": "clip"})
    store.write("v", "object", torch.zeros(2, 8, 512), {"layout": "items,tokens_per_item,dim", "tracker": "old"})

    replacement = torch.arange(3 * 8 * 512, dtype=torch.float16).reshape(3, 8, 512)
    store.write("v", "object", replacement, {"layout": "items,tokens_per_item,dim"})

    assert exactly_equal(store.read("v", "object"), replacement)
    assert "tracker" not in store.metadata("v", "object")
    assert store.metadata("v", "object")["shape"] == "[3, 8, 512]"
    assert exactly_equal(store.read("v", "video"), video)
    assert store.metadata("v", "video")["encoder"] == "clip"


def test_has_answers_per_cue(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("v", "video", torch.zeros(2, 2))

    assert store.has("v", "video")
    assert not store.has("v", "pose")
    assert not store.has("other", "video")


def test_listing_is_sorted_and_ignores_temp_and_foreign_files(tmp_path):
    store = FeatureStore(tmp_path)
    for video_id in ("b", "a", "c.d"):
        store.write(video_id, "video", torch.zeros(1))
    (tmp_path / ".a.safetensors.123.0badf00d.tmp").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("not features")

    assert store.video_ids() == ["a", "b", "c.d"]
    assert list(store) == ["a", "b", "c.d"]
    assert len(store) == 3
    assert "a" in store and "zz" not in store and "../a" not in store


def test_stale_temp_files_are_removed(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("a", "video", torch.zeros(1))
    (tmp_path / ".a.safetensors.123.0badf00d.tmp").write_bytes(b"half")
    (tmp_path / ".b.safetensors.456.feedbeef.tmp").write_bytes(b"half")

    assert store.remove_stale_temp_files() == 2
    assert temp_files(tmp_path) == []
    assert store.video_ids() == ["a"]


@pytest.mark.parametrize("video_id", ["", "/abs", "a//b", "a/", "../escape", "a/../../escape", "a\\b", ".hidden",
                                      "a/.hidden/b"])
def test_unsafe_video_ids_are_refused(tmp_path, video_id):
    with pytest.raises(ValueError, match="invalid video id"):
        FeatureStore(tmp_path).path_for(video_id)
    with pytest.raises(ValueError, match="invalid video id"):
        FeatureStore(tmp_path).write(video_id, "video", torch.zeros(1))
    assert video_id not in FeatureStore(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ids_with_folders_live_in_sub_folders(tmp_path):
    store = FeatureStore(tmp_path)
    first, second = "P03/P03T01C05/clips/clip_1", "P04/P04T02C01/clips/clip_1"
    assert store.path_for(first) == tmp_path / "P03" / "P03T01C05" / "clips" / "clip_1.safetensors"
    store.write(first, "video", torch.zeros(2))
    store.write(second, "video", torch.ones(2))
    store.write(second, "pose", torch.ones(3))
    store.write("flat", "video", torch.zeros(1))

    assert (tmp_path / "P04" / "P04T02C01" / "clips" / "clip_1.safetensors").is_file()
    assert store.video_ids() == ["P03/P03T01C05/clips/clip_1", "P04/P04T02C01/clips/clip_1", "flat"]
    assert len(store) == 3 and first in store and "P03/P03T01C05/clips/clip_2" not in store
    assert "clip_1" not in store and "P03" not in store
    assert torch.equal(store.read(second, "video"), torch.ones(2)) and store.cues(second) == ["pose", "video"]
    assert store.has(first, "video") and not store.has(first, "pose")


def test_listing_skips_hidden_folders_and_foreign_files_in_sub_folders(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("a/b", "video", torch.zeros(1))
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "c.safetensors").write_bytes(b"somebody else's")
    (tmp_path / "a" / ".b.safetensors.123.0badf00d.tmp").write_bytes(b"half a file")
    (tmp_path / "a" / "notes.txt").write_text("not features")
    (tmp_path / "folder.safetensors").mkdir()

    assert store.video_ids() == ["a/b"]
    assert store.remove_stale_temp_files() == 1
    assert temp_files(tmp_path / "a") == []


def test_a_write_into_a_sub_folder_is_atomic_there(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    write_half_then_fail, seen = _crash_after_half(OSError("disk full"))
    monkeypatch.setattr(atomic_files, "_write_bytes", write_half_then_fail)

    with pytest.raises(OSError):
        store.write("P03/clips/clip_1", "video", torch.randn(356, 1024))

    assert seen["temp_name"].startswith(str(tmp_path / "P03" / "clips" / ".clip_1.safetensors."))
    assert store.video_ids() == [] and temp_files(tmp_path / "P03" / "clips") == []


def test_a_missing_store_folder_is_an_error_without_create(tmp_path):
    with pytest.raises(FeatureStoreError, match="no such feature store folder"):
        FeatureStore(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_missing_video_and_missing_cue_give_clear_errors(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("v", "video", torch.zeros(1))
    store.write("v", "pose", torch.zeros(1))

    with pytest.raises(FeatureStoreError, match=r"no features for video 'other'") as missing_video:
        store.read("other", "video")
    assert str(tmp_path / "other.safetensors") in str(missing_video.value)

    with pytest.raises(FeatureStoreError, match=r"no 'object' features \(the file holds: pose, video\)") as missing_cue:
        store.read("v", "object")
    assert str(store.path_for("v")) in str(missing_cue.value)
    with pytest.raises(FeatureStoreError, match="no 'object' features"):
        store.metadata("v", "object")


def _crash_after_half(exception):
    """A stand-in for the byte writer that writes half the file to the temp path, then raises."""
    seen = {}

    def write_half_then_fail(handle, data):
        seen["temp_name"] = handle.name
        handle.write(data[: len(data) // 2])
        handle.flush()
        raise exception

    return write_half_then_fail, seen


@pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
def test_a_crash_mid_write_leaves_no_file_for_a_new_video(tmp_path, monkeypatch, exception):
    store = FeatureStore(tmp_path)
    write_half_then_fail, seen = _crash_after_half(exception)
    monkeypatch.setattr(atomic_files, "_write_bytes", write_half_then_fail)

    with pytest.raises(type(exception)):
        store.write("new", "video", torch.randn(356, 1024))

    temp_name = seen["temp_name"]
    assert temp_name.startswith(str(tmp_path / ".new.safetensors.")) and temp_name.endswith(".tmp")
    assert not store.path_for("new").exists()
    assert not store.has("new", "video")
    assert store.video_ids() == []
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
def test_a_crash_mid_write_keeps_the_old_file_exactly(tmp_path, monkeypatch, exception):
    store = FeatureStore(tmp_path)
    video = torch.randn(356, 1024).to(torch.float16)
    store.write("v", "video", video, {"encoder": "clip"})
    old_bytes = store.path_for("v").read_bytes()
    write_half_then_fail, _ = _crash_after_half(exception)
    monkeypatch.setattr(atomic_files, "_write_bytes", write_half_then_fail)

    with pytest.raises(type(exception)):
        store.write("v", "pose", torch.randn(256, 216))

    assert store.path_for("v").read_bytes() == old_bytes
    assert store.has("v", "video") and not store.has("v", "pose")
    assert exactly_equal(store.read("v", "video"), video)
    assert temp_files(tmp_path) == []


def test_a_truncated_file_at_the_final_path_is_a_clear_error(tmp_path):
    store = FeatureStore(tmp_path)
    store.write("v", "video", torch.randn(16, 16))
    path = store.path_for("v")
    path.write_bytes(path.read_bytes()[:-100])

    for read in (lambda: store.read("v", "video"), lambda: store.has("v", "video"), lambda: store.cues("v")):
        with pytest.raises(FeatureStoreError, match="not a readable safetensors file") as error:
            read()
        assert str(path) in str(error.value)
    with pytest.raises(FeatureStoreError, match="not a readable safetensors file"):
        store.write("v", "pose", torch.zeros(1))


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xff" * 64])
def test_a_file_that_is_not_safetensors_is_a_clear_error(tmp_path, content):
    store = FeatureStore(tmp_path)
    store.path_for("v").write_bytes(content)

    with pytest.raises(FeatureStoreError, match=r"v\.safetensors: not a readable safetensors file"):
        store.has("v", "video")


def test_a_safetensors_file_from_elsewhere_is_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    store = FeatureStore(tmp_path)
    save_file({"video": torch.zeros(2)}, str(store.path_for("v")))

    with pytest.raises(FeatureStoreError, match=r"v\.safetensors: not a llavidal feature file"):
        store.read("v", "video")


def test_a_newer_format_version_is_refused(tmp_path):
    from safetensors.torch import save_file

    store = FeatureStore(tmp_path)
    save_file({"video": torch.zeros(2)}, str(store.path_for("v")),
              metadata={"format": "llavidal-features", "format_version": "2"})

    with pytest.raises(FeatureStoreError, match="format version '2'"):
        store.read("v", "video")


def run_command(manager, path, argv):
    registration = manager.commands()[path]
    parser = argparse.ArgumentParser()
    registration.add_arguments(parser)
    return registration.run(parser.parse_args(argv))


def test_features_list_prints_one_json_line_per_video(tmp_path, capsys, llavidal_plugins):
    store = FeatureStore(tmp_path)
    store.write("a", "video", torch.zeros(356, 1024, dtype=torch.float16))
    store.write("a", "pose", torch.zeros(256, 216))
    store.write("b", "video", torch.zeros(356, 1024, dtype=torch.bfloat16))

    assert run_command(llavidal_plugins, ("features", "list"), [str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"video_id": "a", "cues": {"pose": {"shape": [256, 216], "dtype": "float32"},
                                   "video": {"shape": [356, 1024], "dtype": "float16"}}},
        {"video_id": "b", "cues": {"video": {"shape": [356, 1024], "dtype": "bfloat16"}}},
    ]

    assert run_command(llavidal_plugins, ("features", "list"), [str(tmp_path), "--cue", "pose"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"video_id": "a", "cues": {"pose": {"shape": [256, 216], "dtype": "float32"}}}]


def test_features_list_of_a_missing_folder_is_a_user_error(tmp_path, llavidal_plugins):
    with pytest.raises(FeatureStoreError, match="no such feature store folder"):
        run_command(llavidal_plugins, ("features", "list"), [str(tmp_path / "missing")])


def test_registering_the_feature_commands_does_not_import_torch():
    code = ("import sys, llavidal_core.commands.features; "
            "assert 'torch' not in sys.modules, 'feature_commands imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- non-finite features, corrupt files, listing ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_write_of_non_finite_features_is_refused_and_writes_nothing(tmp_path, dtype, bad):
    store = FeatureStore(tmp_path)
    store.write("v", "pose", torch.ones(4, 3))
    before = store.path_for("v").read_bytes()
    features = torch.zeros(356, 8, dtype=dtype)
    features[17, 3] = bad
    features[200, 0] = bad

    with pytest.raises(NonFiniteError, match=r"v\.safetensors \[video\]: 2 of 2848 values are not finite"):
        store.write("v", "video", features)
    with pytest.raises(NonFiniteError):
        store.write("new", "video", features)

    assert store.path_for("v").read_bytes() == before
    assert store.video_ids() == ["v"] and temp_files(tmp_path) == []


def test_a_stored_nan_is_refused_on_reading_naming_the_file_and_the_cue(tmp_path):
    from safetensors.torch import save_file

    store = FeatureStore(tmp_path)
    video = torch.ones(356, 4)
    video[3, 1] = float("nan")
    save_file({"video": video, "pose": torch.ones(2, 2)}, str(store.path_for("v")),
              metadata={"format": "llavidal-features", "format_version": "1"})  # written by an older llavidal

    for read in (lambda: store.read("v", "video"), lambda: store.read_all("v")):
        with pytest.raises(NonFiniteError, match=rf"{re.escape(str(store.path_for('v')))} \[video\]: 1 of 1424"):
            read()
    assert exactly_equal(store.read("v", "pose"), torch.ones(2, 2))
    assert store.cues("v") == ["pose", "video"]  # the header alone is still readable


def test_a_corrupt_file_is_replaced_only_when_the_writer_asks(tmp_path, caplog):
    store = FeatureStore(tmp_path)
    store.write("v", "video", torch.randn(16, 16))
    path = store.path_for("v")
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(CorruptFeatureFileError, match="not a readable safetensors file"):
        store.write("v", "pose", torch.ones(2))
    with caplog.at_level(logging.WARNING, logger="llavidal_core.features"):
        store.write("v", "pose", torch.ones(2), replace_corrupt=True)

    assert store.cues("v") == ["pose"]
    assert str(path) in caplog.text and "replacing it with a file holding only the 'pose' features" in caplog.text


def test_a_file_of_a_newer_format_is_never_replaced(tmp_path):
    from safetensors.torch import save_file

    store = FeatureStore(tmp_path)
    save_file({"video": torch.zeros(2)}, str(store.path_for("v")),
              metadata={"format": "llavidal-features", "format_version": "2"})
    before = store.path_for("v").read_bytes()

    with pytest.raises(FeatureStoreError, match="format version '2'"):
        store.write("v", "pose", torch.ones(2), replace_corrupt=True)
    assert store.path_for("v").read_bytes() == before


def test_features_list_reports_a_corrupt_file_and_lists_the_rest(tmp_path, capsys, llavidal_plugins):
    store = FeatureStore(tmp_path)
    for video_id in ("a", "b", "c"):
        store.write(video_id, "video", torch.zeros(2, 3))
    store.path_for("b").write_bytes(b"half a file")

    assert run_command(llavidal_plugins, ("features", "list"), [str(tmp_path)]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["video_id"] for line in lines] == ["a", "b", "c"]
    assert lines[0]["cues"] == lines[2]["cues"] == {"video": {"shape": [2, 3], "dtype": "float32"}}
    assert lines[1]["path"] == str(store.path_for("b")) and "not a readable safetensors file" in lines[1]["error"]
    assert "1 feature file(s) could not be read" in captured.err

    assert run_command(llavidal_plugins, ("features", "list"), [str(tmp_path), "--cue", "video"]) == 1
    assert [json.loads(line).get("error") is None for line in capsys.readouterr().out.splitlines()] == [
        True, False, True]


def test_features_list_into_a_reader_that_stops_early_exits_quietly(tmp_path):
    store = FeatureStore(tmp_path)
    one_file = store.write("a_rather_long_video_identifier_00000", "video", torch.zeros(1)).read_bytes()
    for number in range(1, 1500):  # ~90 KB of JSON lines: more than a pipe holds, so the lister meets its closed end
        store.path_for(f"a_rather_long_video_identifier_{number:05d}").write_bytes(one_file)
    listing = subprocess.Popen([sys.executable, "-m", "llavidal_core", "features", "list", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = listing.stdout.readline()
    listing.stdout.close()
    stderr = listing.stderr.read()
    assert listing.wait(timeout=120) == 0, stderr
    assert json.loads(first)["video_id"] == "a_rather_long_video_identifier_00000"
    assert stderr == b""
