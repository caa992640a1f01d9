"""A model given by a path that does not exist is reported as "no such model folder", never as a bad Hub id."""

import pytest

from llavidal_core.cli import main
from llavidal_core.errors import LlavidalError
from llavidal_core.model_location import looks_like_path, model_location


@pytest.mark.parametrize("model_id, is_path", [
    ("./no-such-folder", True), ("../models/llavidal", True), ("/opt/models/llavidal", True),
    ("~/models/llavidal", True), ("runs/exp1/checkpoint-500", True), ("C:\\models\\llavidal", True),
    ("no-such-folder", False), ("MBZUAI/LLAVIDAL", False), ("llavidal-tests/tiny-fake", False),
])
def test_paths_are_told_from_hub_ids(model_id, is_path):
    assert looks_like_path(model_id) is is_path


def test_an_existing_first_part_makes_it_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path("models/llavidal")
    (tmp_path / "models").mkdir()
    assert looks_like_path("models/llavidal")
    with pytest.raises(LlavidalError, match=r"^models/llavidal: no such model folder$"):
        model_location("models/llavidal")


def test_pipeline_names_a_missing_model_folder(tmp_path, monkeypatch, fake_video_plugins):
    from llavidal_core.inference import LlavidalPipeline

    monkeypatch.chdir(tmp_path)
    for missing in ("./no-such-folder", str(tmp_path / "no-such-folder")):
        with pytest.raises(LlavidalError, match="no such model folder") as error:
            LlavidalPipeline.from_pretrained(missing, device="cpu")
        assert "Repo id" not in str(error.value)


def test_a_folder_that_is_not_a_model_and_a_file_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(LlavidalError, match="empty: not a model folder \\(it has no config.json\\)"):
        model_location(tmp_path / "empty")
    with pytest.raises(LlavidalError, match="weights.bin: is a file"):
        model_location(tmp_path / "weights.bin")
    with pytest.raises(LlavidalError, match="no model given"):
        model_location("")  # not the working directory


def test_a_hub_id_that_cannot_be_loaded_also_says_no_folder_is_here(tmp_path, monkeypatch, offline_hub,
                                                                      fake_video_plugins):
    from llavidal_core.inference import LlavidalPipeline

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LlavidalError, match="llavidal-tests/absent: no model folder of that name here, and the Hub "
                                            "repo 'llavidal-tests/absent' could not be loaded"):
        LlavidalPipeline.from_pretrained("llavidal-tests/absent", device="cpu")


@pytest.mark.parametrize("command", [
    ["ask", "./no-such-folder", "video.mp4", "What?"],  # the model is named before the missing video
    ["ask", "./no-such-folder", "--dry-run"],
    ["chat", "./no-such-folder"],
    ["serve", "./no-such-folder"],
])
def test_commands_name_a_missing_model_folder(command, tmp_path, monkeypatch, capsys, fake_video_plugins):
    monkeypatch.chdir(tmp_path)
    assert main(command) == 1
    assert capsys.readouterr().err == "llavidal: error: ./no-such-folder: no such model folder\n"


def test_eval_mcq_names_a_missing_model_folder(tmp_path, monkeypatch, capsys, fake_video_plugins):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "features").mkdir()
    (tmp_path / "q.json").write_text('[{"video_filename": "a.mp4", "question": "q?", "answer_choices": {"A": "x"}, '
                                     '"ground_truth_letter": "A"}]')
    assert main(["eval", "mcq", "./no-such-folder", "--questions", "q.json", "--features", "features"]) == 1
    assert capsys.readouterr().err == "llavidal: error: ./no-such-folder: no such model folder\n"


def test_a_plain_language_model_folder_is_named_as_not_a_llavidal_model(tiny_llm_dir):
    from llavidal_core.inference import LlavidalPipeline
    from llavidal_core.modeling.configuration_llavidal import NotALlavidalModelError

    with pytest.raises(NotALlavidalModelError, match="not a llavidal model"):
        LlavidalPipeline.from_pretrained(tiny_llm_dir, load_encoders=False)
