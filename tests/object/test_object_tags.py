"""Tag parsing: realistic BLIP-2 answers → a clean object vocabulary; user tags and stop-lists."""

import pytest

from llavidal_object.tags import build_vocabulary, parse_object_answer, singularize, split_user_tags


@pytest.mark.parametrize("answer, tags", [
    ("a cup, a table and a person", ["cup", "table"]),
    ("there is a phone", ["phone"]),
    ("There are two chairs.", ["chair"]),
    ("a man holding a cup of coffee", ["cup"]),
    ("a glass of water and a light", ["glass", "light"]),
    ("the objects in the image are a laptop and a mouse", ["laptop", "mouse"]),
    ("a kitchen with a stove and a refrigerator", ["stove", "refrigerator"]),
    ("a person sitting on a couch with a remote control", ["couch", "remote control"]),
    ("cups, plates, knives and boxes", ["cup", "plate", "knife", "box"]),
    ("a pair of scissors and some glasses", ["scissors", "glasses"]),
    ("a woman is brushing her teeth in front of a mirror", ["mirror"]),
    ("a red cup on a wooden table next to the wall", ["cup", "table"]),
    ("a cup. a cup, a cup", ["cup"]),
    ("cup cup cup cup", ["cup"]),
    ("a man and a woman", []),
    ("", []),
])
def test_realistic_answers_give_clean_tags(answer, tags):
    assert parse_object_answer(answer) == tags


def test_stop_words_drop_tags_and_head_nouns():
    assert parse_object_answer("a cup, a table and a coffee table", stop_words=["Table"]) == ["cup"]


def test_vocabulary_ranks_by_how_many_answers_name_a_tag():
    answers = ["a cup, a table and a person", "there is a phone", "a phone and a cup", "a book and a cup"]
    assert build_vocabulary(answers) == ["cup", "phone", "table", "book"]
    assert build_vocabulary(answers, stop_words=["phone"], max_tags=2) == ["cup", "table"]
    assert build_vocabulary([]) == []


@pytest.mark.parametrize("plural, singular", [
    ("cups", "cup"), ("bottles", "bottle"), ("batteries", "battery"), ("boxes", "box"), ("dishes", "dish"),
    ("knives", "knife"), ("glasses", "glasses"), ("bus", "bus"), ("glass", "glass"), ("tomatoes", "tomato"),
])
def test_singularize(plural, singular):
    assert singularize(plural) == singular


def test_user_tags_are_cleaned_and_deduplicated_without_word_rules():
    assert split_user_tags(" Cup, remote_control ,cups,,Cup ") == ["cup", "remote control", "cups"]
    assert split_user_tags(["phone", "table"], stop_words=["table"]) == ["phone"]
    with pytest.raises(ValueError, match="no object tags"):
        split_user_tags(" , ")
