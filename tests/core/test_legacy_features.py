"""The original code's .pkl features: safe reading, writing, and folder import into / export from the store."""

import argparse
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from llavidal_core.errors import FeatureStoreError, LlavidalError, UnsafePickleError
from llavidal_core.features import FeatureStore
from llavidal_core.legacy_features import (
    ExportReport,
    ImportReport,
    export_legacy_folder,
    import_legacy_folder,
    legacy_file_name,
    read_legacy_features,
    video_id_from_legacy_name,
    write_legacy_features,
)


def video_features(seed: int) -> np.ndarray:
    """What the original extraction writes per video: float16 (356, 1024)."""
    return np.random.default_rng(seed).standard_normal((356, 1024)).astype(np.float16)


def dump(path, obj, protocol=4):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return path


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class RunsShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class RunsEval:
    def __init__(self, expression):
        self.expression = expression

    def __reduce__(self):
        return eval, (self.expression,)


# -- reading ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickled_video_feature_reads_back_exactly(tmp_path, protocol):
    array = video_features(0)
    path = dump(tmp_path / "nasa_13013.pkl", array, protocol)

    read = read_legacy_features(path)

    assert isinstance(read, np.ndarray)
    assert identical(read, array)


def test_numpy_1_pickles_read_without_a_deprecation_warning(tmp_path):
    array = video_features(1)
    numpy_2_pickle = pickle.dumps(array, protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in numpy_2_pickle
    path = tmp_path / "old.pkl"
    path.write_bytes(numpy_2_pickle.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert identical(read_legacy_features(path), array)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_other_numeric_arrays_read_back_exactly(tmp_path, protocol):
    for array in (np.zeros((0, 512), np.float32), np.arange(24, dtype=np.int64).reshape(2, 3, 4),
                  np.random.default_rng(2).standard_normal((3, 8, 512)).astype(np.float32)):
        assert identical(read_legacy_features(dump(tmp_path / "a.pkl", array, protocol)), array)


def test_os_system_in_a_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(RunsShellCommand(f"touch {marker}")))

    with pytest.raises(UnsafePickleError) as error:
        read_legacy_features(path)

    assert f"'{os.system.__module__}.system'" in str(error.value)
    assert str(path) in str(error.value)
    assert not marker.exists()


def test_builtins_eval_in_a_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(RunsEval(f"open({str(marker)!r}, 'w').close()")))

    with pytest.raises(UnsafePickleError, match=r"'builtins\.eval'") as error:
        read_legacy_features(path)

    assert str(path) in str(error.value)
    assert not marker.exists()


def test_a_malicious_global_inside_an_array_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = dump(tmp_path / "evil.pkl", [video_features(0), RunsShellCommand(f"touch {marker}")])

    with pytest.raises(UnsafePickleError, match="system"):
        read_legacy_features(path)
    assert not marker.exists()


def test_codecs_encode_is_allowed_only_as_protocol_2_bytes(tmp_path):
    path = tmp_path / "encoded.pkl"
    # protocol 2: _codecs.encode("abc", "base64")
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R.")

    with pytest.raises(UnsafePickleError, match="encoding 'base64'"):
        read_legacy_features(path)


@pytest.mark.parametrize("obj, held", [
    ({"video": np.zeros((2, 2), np.float16)}, "dict"),
    ([np.zeros((2, 2), np.float16)], "list"),
    (np.float16(1.5), "float16"),
])
def test_a_pickle_holding_something_other_than_an_array_is_refused(tmp_path, obj, held):
    path = dump(tmp_path / "odd.pkl", obj)

    with pytest.raises(FeatureStoreError, match=f"holds a {held}, not a numpy array") as error:
        read_legacy_features(path)
    assert str(path) in str(error.value)


def test_an_object_dtype_array_is_refused(tmp_path):
    path = dump(tmp_path / "objects.pkl", np.array([1, "two", 3.0], dtype=object))

    with pytest.raises(UnsafePickleError, match="dtype object") as error:
        read_legacy_features(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", None])
def test_corrupt_and_truncated_pickles_are_clear_errors(tmp_path, content):
    path = tmp_path / "broken.pkl"
    if content is None:  # a real pickle cut short
        content = pickle.dumps(video_features(0), protocol=4)[:5000]
    path.write_bytes(content)

    with pytest.raises(FeatureStoreError, match="not a readable pickle") as error:
        read_legacy_features(path)
    assert str(path) in str(error.value)


# -- writing ---------------------------------------------------------------------------------------------

def test_write_then_read_round_trips_as_the_original_pickle(tmp_path):
    array = video_features(3)
    path = tmp_path / "v.pkl"

    write_legacy_features(path, array)

    assert path.read_bytes()[:2] == b"\x80\x04"  # pickle protocol 4
    with open(path, "rb") as handle:  # what the original code's pickle.load gets
        assert identical(pickle.load(handle), array)
    assert identical(read_legacy_features(path), array)
    assert [p.name for p in tmp_path.iterdir()] == ["v.pkl"]


def test_a_tensor_is_written_as_its_numpy_array(tmp_path):
    tensor = torch.randn(256, 216).to(torch.float16)

    write_legacy_features(tmp_path / "v_pose.pkl", tensor)

    assert identical(read_legacy_features(tmp_path / "v_pose.pkl"), tensor.numpy())


def test_bfloat16_cannot_be_written_as_a_pickle(tmp_path):
    with pytest.raises(FeatureStoreError, match="bfloat16"):
        write_legacy_features(tmp_path / "v.pkl", torch.zeros(2, dtype=torch.bfloat16))
    assert list(tmp_path.iterdir()) == []


def test_legacy_file_names():
    assert legacy_file_name("nasa_13013", "video") == "nasa_13013.pkl"
    assert legacy_file_name("nasa_13013", "pose") == "nasa_13013_pose.pkl"
    assert legacy_file_name("nasa_13013", "object") == "nasa_13013_object.pkl"
    assert video_id_from_legacy_name("nasa_13013.pkl", "video") == "nasa_13013"
    assert video_id_from_legacy_name("nasa_13013_pose.pkl", "pose") == "nasa_13013"
    assert video_id_from_legacy_name("001_001_video_001_object.pkl", "object") == "001_001_video_001"
    assert video_id_from_legacy_name("P03/P03T01C05/clips/clip_1_pose.pkl", "pose") == "P03/P03T01C05/clips/clip_1"
    assert video_id_from_legacy_name("Makecoffee.Pourgrains_p18.pkl", "video") == "Makecoffee.Pourgrains_p18"
    assert legacy_file_name("P03/P03T01C05/clips/clip_1", "object") == "P03/P03T01C05/clips/clip_1_object.pkl"
    with pytest.raises(ValueError, match="not a legacy pose feature file name"):
        video_id_from_legacy_name("nasa_13013.pkl", "pose")
    for bad in ("../escape.pkl", "P03/_pose.pkl"):
        with pytest.raises(ValueError, match=r"\.\./escape|names no video id"):
            video_id_from_legacy_name(bad, "pose" if "_pose" in bad else "video")
    with pytest.raises(ValueError, match="invalid video id"):
        legacy_file_name("../escape", "video")
    with pytest.raises(FeatureStoreError, match="'audio' has no legacy .pkl layout"):
        legacy_file_name("v", "audio")


# -- folders ---------------------------------------------------------------------------------------------

@pytest.fixture
def video_pkl_folder(tmp_path):
    folder = tmp_path / "clip_features"
    folder.mkdir()
    arrays = {video_id: video_features(seed) for seed, video_id in enumerate(["a", "b", "c"])}
    for video_id, array in arrays.items():
        dump(folder / f"{video_id}.pkl", array)
    (folder / "broken.pkl").write_bytes(b"\x80\x04 truncated")
    dump(folder / "a_pose.pkl", np.zeros((256, 216), np.float16))  # another cue's file, not a video
    return folder, arrays


def test_import_then_export_gives_identical_arrays_and_reports_the_bad_file(tmp_path, video_pkl_folder):
    folder, arrays = video_pkl_folder
    store = FeatureStore(tmp_path / "store")

    report = import_legacy_folder(folder, store, "video")

    assert isinstance(report, ImportReport)
    assert report.written == ["a", "b", "c"]
    assert report.skipped == []
    assert [path for path, _ in report.failed] == [str(folder / "broken.pkl")]
    assert "not a readable pickle" in report.failed[0][1]
    assert store.video_ids() == ["a", "b", "c"]
    assert store.metadata("a", "video")["layout"] == "tokens,dim"
    assert store.read("a", "video").dtype == torch.float16

    exported = tmp_path / "exported"
    export_report = export_legacy_folder(store, "video", exported)

    assert isinstance(export_report, ExportReport)
    assert export_report.written == ["a", "b", "c"] and export_report.failed == []
    assert sorted(p.name for p in exported.iterdir()) == ["a.pkl", "b.pkl", "c.pkl"]
    for video_id, array in arrays.items():
        with open(exported / f"{video_id}.pkl", "rb") as handle:
            assert identical(pickle.load(handle), array)


def test_object_features_stay_three_dimensional_through_the_store(tmp_path):
    folder = tmp_path / "objects"
    folder.mkdir()
    array = np.random.default_rng(4).standard_normal((3, 8, 512)).astype(np.float32)
    dump(folder / "v1_object.pkl", array)
    store = FeatureStore(tmp_path / "store")

    assert import_legacy_folder(folder, store, "object").written == ["v1"]

    assert store.read("v1", "object").shape == (3, 8, 512)
    assert store.metadata("v1", "object")["layout"] == "items,tokens_per_item,dim"
    assert export_legacy_folder(store, "object", tmp_path / "out").written == ["v1"]
    assert identical(read_legacy_features(tmp_path / "out" / "v1_object.pkl"), array)


def test_import_resumes_by_skipping_videos_the_store_has(tmp_path, video_pkl_folder):
    folder, arrays = video_pkl_folder
    store = FeatureStore(tmp_path / "store")
    store.write("a", "pose", torch.zeros(256, 216))  # a file for 'a' exists, but without the video cue
    store.write("b", "video", torch.zeros(1))

    first = import_legacy_folder(folder, store, "video")
    assert first.written == ["a", "c"] and first.skipped == ["b"]
    assert store.cues("a") == ["pose", "video"]
    assert store.read("b", "video").shape == (1,)

    again = import_legacy_folder(folder, store, "video")
    assert again.written == [] and again.skipped == ["a", "b", "c"]

    overwritten = import_legacy_folder(folder, store, "video", overwrite=True)
    assert overwritten.written == ["a", "b", "c"]
    assert identical(store.read("b", "video").numpy(), arrays["b"])


def test_export_skips_existing_files_and_videos_without_the_cue(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.write("a", "video", torch.ones(2, 4, dtype=torch.float16))
    store.write("b", "video", torch.ones(2, 4, dtype=torch.float16))
    store.write("c", "pose", torch.ones(2, 4))
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.pkl").write_bytes(b"left alone")

    report = export_legacy_folder(store, "video", target)

    assert report.written == ["b"] and report.skipped == ["a"] and report.failed == []
    assert (target / "a.pkl").read_bytes() == b"left alone"
    assert not (target / "c.pkl").exists()


def test_export_reports_a_bfloat16_cue_and_writes_the_others(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.write("a", "video", torch.ones(2, 4, dtype=torch.bfloat16))
    store.write("b", "video", torch.ones(2, 4, dtype=torch.float16))

    report = export_legacy_folder(store, "video", tmp_path / "out")

    assert report.written == ["b"]
    assert report.failed == [(str(store.path_for("a")), report.failed[0][1])]
    assert "bfloat16" in report.failed[0][1]


def test_ids_with_folders_export_into_sub_folders_and_import_back(tmp_path):
    store = FeatureStore(tmp_path / "store")
    arrays = {video_id: video_features(seed) for seed, video_id in enumerate(
        ["P03/P03T01C05/clips/clip_1", "P04/P04T02C01/clips/clip_1", "Makecoffee.Pourgrains_p18_r01_v13_c03"])}
    for video_id, array in arrays.items():
        store.write(video_id, "video", torch.from_numpy(array))
        store.write(video_id, "pose", torch.zeros(2, 3))
    exported = tmp_path / "exported"

    assert export_legacy_folder(store, "video", exported).written == sorted(arrays)
    assert export_legacy_folder(store, "pose", exported).written == sorted(arrays)

    assert sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*.pkl")) == [
        "Makecoffee.Pourgrains_p18_r01_v13_c03.pkl", "Makecoffee.Pourgrains_p18_r01_v13_c03_pose.pkl",
        "P03/P03T01C05/clips/clip_1.pkl", "P03/P03T01C05/clips/clip_1_pose.pkl",
        "P04/P04T02C01/clips/clip_1.pkl", "P04/P04T02C01/clips/clip_1_pose.pkl"]
    with open(exported / "P04/P04T02C01/clips/clip_1.pkl", "rb") as handle:  # what the original code loads
        assert identical(pickle.load(handle), arrays["P04/P04T02C01/clips/clip_1"])

    (exported / ".trash").mkdir()
    dump(exported / ".trash" / "old.pkl", video_features(9))
    again = FeatureStore(tmp_path / "again")
    report = import_legacy_folder(exported, again, "video")
    assert report.written == sorted(arrays) and report.failed == []
    assert again.video_ids() == sorted(arrays)
    assert again.metadata("P03/P03T01C05/clips/clip_1", "video")["imported_from"] == "P03/P03T01C05/clips/clip_1.pkl"
    for video_id, array in arrays.items():
        assert identical(again.read(video_id, "video").numpy(), array)


def test_import_from_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureStoreError, match="no such folder"):
        import_legacy_folder(tmp_path / "missing", FeatureStore(tmp_path / "store"), "video")


# -- commands --------------------------------------------------------------------------------------------

def run_command(manager, path, argv):
    registration = manager.commands()[path]
    parser = argparse.ArgumentParser()
    registration.add_arguments(parser)
    return registration.run(parser.parse_args(argv))


def test_import_and_export_commands(tmp_path, capsys, llavidal_plugins, video_pkl_folder):
    folder, arrays = video_pkl_folder
    store_dir, out_dir = tmp_path / "store", tmp_path / "out"

    exit_code = run_command(llavidal_plugins, ("features", "import-pkl"),
                            [str(folder), "--cue", "video", "--out", str(store_dir)])

    captured = capsys.readouterr()
    assert exit_code == 1
    assert captured.out.strip() == f"imported 3 video .pkl files into {store_dir} (0 skipped: already in the store; 1 failed)"
    assert f"{folder / 'broken.pkl'}: not a readable pickle" in captured.err
    assert FeatureStore(store_dir).video_ids() == ["a", "b", "c"]

    (folder / "broken.pkl").unlink()
    assert run_command(llavidal_plugins, ("features", "import-pkl"),
                       [str(folder), "--cue", "video", "--out", str(store_dir)]) == 0
    assert "(3 skipped: already in the store; 0 failed)" in capsys.readouterr().out

    assert run_command(llavidal_plugins, ("features", "export-pkl"),
                       [str(store_dir), "--cue", "video", "--out", str(out_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"exported 3 video .pkl files into {out_dir}")
    for video_id, array in arrays.items():
        assert identical(read_legacy_features(out_dir / f"{video_id}.pkl"), array)

    assert run_command(llavidal_plugins, ("features", "export-pkl"),
                       [str(store_dir), "--cue", "video", "--out", str(out_dir), "--overwrite"]) == 0
    assert capsys.readouterr().out.startswith(f"exported 3 video .pkl files into {out_dir} (0 skipped")


def test_export_command_with_a_cue_the_old_layout_lacks_is_a_user_error(tmp_path, llavidal_plugins):
    FeatureStore(tmp_path / "store").write("a", "audio", torch.zeros(1))

    with pytest.raises(LlavidalError, match="'audio' has no legacy .pkl layout"):
        run_command(llavidal_plugins, ("features", "export-pkl"),
                    [str(tmp_path / "store"), "--cue", "audio", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
