"""Video ids: the path under the input root without its last suffix; the original's first-dot naming apart."""

from pathlib import Path, PurePosixPath

import pytest

from llavidal_core.video_ids import check_video_id, legacy_video_id, video_id_for


@pytest.mark.parametrize("path, root, video_id", [
    ("/data/TSU/P03/P03T01C05/clips/clip_1.mp4", "/data/TSU", "P03/P03T01C05/clips/clip_1"),
    ("/data/TSU/P04/P04T02C01/clips/clip_1.mp4", "/data/TSU/", "P04/P04T02C01/clips/clip_1"),
    ("/data/smarthome/Makecoffee.Pourgrains_p18_r01_v13_c03.mp4", "/data/smarthome",
     "Makecoffee.Pourgrains_p18_r01_v13_c03"),
    ("/videos/a.b.c.mp4", "/videos", "a.b.c"),
    ("/videos/no_extension", "/videos", "no_extension"),
    ("TSU/P03/clip_1.mp4", "TSU", "P03/clip_1"),
    (Path("/videos/sub/x.avi"), Path("/videos"), "sub/x"),
])
def test_the_id_is_the_path_under_the_root_without_the_last_suffix(path, root, video_id):
    assert video_id_for(path, root) == video_id


@pytest.mark.parametrize("path, video_id", [
    ("P03/P03T01C05/clips/clip_1.mp4", "P03/P03T01C05/clips/clip_1"),  # a relative path keeps its folders
    (PurePosixPath("P03/P03T01C05/clips/clip_1.mp4"), "P03/P03T01C05/clips/clip_1"),
    ("./001_video_001.pkl", "001_video_001"),
    ("Makecoffee.Pourgrains_p18_r01_v13_c03.mp4", "Makecoffee.Pourgrains_p18_r01_v13_c03"),
    ("/data/TSU/P03/P03T01C05/clips/clip_1.mp4", "clip_1"),  # an absolute path keeps only its name
    ("/data/videos/a.b.c.mp4", "a.b.c"),
])
def test_without_a_root(path, video_id):
    assert video_id_for(path) == video_id


def test_a_relative_path_under_an_absolute_root_is_taken_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert video_id_for("P03/clip_1.mp4", tmp_path) == "P03/clip_1"


@pytest.mark.parametrize("path, root, message", [
    ("/elsewhere/x.mp4", "/videos", "not inside the input folder"),
    ("/videos/../x.mp4", "/videos", "'..' segment"),
    ("../x.mp4", None, "'..' segment"),
    ("a/../x.mp4", None, "'..' segment"),
    ("/videos/.mp4", None, "starts with '.'"),
    ("/videos/.cache/x.mp4", "/videos", "starts with '.'"),
    ("/videos", "/videos", "names no file"),
    ("", None, "names no file"),
    ("a\\b.mp4", None, "backslash"),
])
def test_paths_without_a_valid_id_are_refused_by_name(path, root, message):
    with pytest.raises(ValueError, match=message) as error:
        video_id_for(path, root)
    assert (path or "''") in str(error.value)


@pytest.mark.parametrize("name, video_id", [
    ("nasa_13013.mp4", "nasa_13013"),
    ("a.b.mp4", "a"),
    ("Makecoffee.Pourgrains_p18_r01_v13_c03.mp4", "Makecoffee"),
    ("/data/TSU/P03/P03T01C05/clips/clip_1.mp4", "clip_1"),
    ("no_extension", "no_extension"),
])
def test_the_originals_naming_cuts_the_file_name_at_its_first_dot(name, video_id):
    assert legacy_video_id(name) == video_id


def test_the_originals_naming_refuses_a_name_without_an_id():
    with pytest.raises(ValueError, match=r"/videos/\.mp4"):
        legacy_video_id("/videos/.mp4")


@pytest.mark.parametrize("video_id", ["v", "P03/P03T01C05/clips/clip_1", "a.b", "a_b-c d"])
def test_valid_ids_are_returned(video_id):
    assert check_video_id(video_id) == video_id


@pytest.mark.parametrize("video_id", ["", "/abs", "a//b", "a/", "./a", "a/./b", "../a", "a/..", ".hidden",
                                      "a/.hidden", "a\\b", "a\0b", None, 3])
def test_invalid_ids_are_refused(video_id):
    with pytest.raises(ValueError, match="video id"):
        check_video_id(video_id)


def test_one_list_of_video_extensions_for_every_command():
    from llavidal_core.video_ids import is_video_path

    assert all(is_video_path(name) for name in ("a.mp4", "b.MKV", "c/d.webm", "e.ts"))
    assert not any(is_video_path(name) for name in ("a.skeleton", "b.txt", "c.safetensors", "mp4"))
