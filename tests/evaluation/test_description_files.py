"""The two description benchmark formats, and the clips of a TSU video."""

import json

import pytest

from llavidal_core.evaluation.description_files import (
    TSU_CONSISTENCY_QUESTIONS,
    TSU_DESCRIPTION_QUESTION,
    DescriptionFormatError,
    load_description_file,
)
from llavidal_core.evaluation.description_sources import clips_among, natural_key

RECORD = {"video_name": "46GP8", "Q": "What does the person do?", "A": "They open a door, then sit down.",
          "cons_Q1": "Describe the video.", "cons_Q2": "What happens in the video?", "cons_A": "A person sits."}


def write(tmp_path, data, name="file.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_charades_descriptions(tmp_path):
    loaded = load_description_file(write(tmp_path, [RECORD, RECORD | {"video_name": "ZZ9"}]))
    assert loaded.protocol == "charades" and [item.item_id for item in loaded.items] == ["0", "1"]
    item = loaded.items[0]
    assert (item.video_name, item.question, item.answer) == ("46GP8", RECORD["Q"], RECORD["A"])
    assert item.consistency_questions == (RECORD["cons_Q1"], RECORD["cons_Q2"])
    assert item.consistency_answer == "A person sits."


def test_tsu_descriptions_take_the_originals_questions(tmp_path):
    loaded = load_description_file(write(tmp_path, {"P02T01C06": "The person enters the kitchen ..."}))
    (item,) = loaded.items
    assert loaded.protocol == "tsu" and item.item_id == item.video_name == "P02T01C06"
    assert item.question == TSU_DESCRIPTION_QUESTION and item.consistency_questions == TSU_CONSISTENCY_QUESTIONS
    assert item.answer == item.consistency_answer == "The person enters the kitchen ..."


@pytest.mark.parametrize("data, message", [
    ([RECORD, {k: v for k, v in RECORD.items() if k != "cons_A"}], r"record 1 lacks \['cons_A'\]"),
    ([RECORD | {"A": ""}], r"record 0: 'A' must be a non-empty string"),
    ([RECORD | {"video_name": "../secret"}], "record 0"),
    ([RECORD, "not a record"], "record 1 is a str"),
    ({"P02T01C06": {"desc": "x"}}, "neither a Charades-Descriptions file"),
    ({"P02T01C06": ""}, "video 'P02T01C06': its description must be a non-empty string"),
    ([], "holds no videos"),
    ("text", "found a str"),
])
def test_broken_files_are_named_with_their_problem(tmp_path, data, message):
    path = write(tmp_path, data, "broken.json")
    with pytest.raises(DescriptionFormatError, match=message) as error:
        load_description_file(path)
    assert str(path) in str(error.value)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(DescriptionFormatError, match="no such questions file"):
        load_description_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(DescriptionFormatError, match="bad.json"):
        load_description_file(tmp_path / "bad.json")


def test_clips_come_in_natural_order_and_only_the_videos_own():
    names = ["P02_clip10", "P02_clip2", "P02_clip1", "P021_clip1", "P02", "P02_", "P03_clip1"]
    assert clips_among(names, "P02") == ["P02_clip1", "P02_clip2", "P02_clip10"]
    assert sorted(["a10", "a9", "b1"], key=natural_key) == ["a9", "a10", "b1"]
