"""ADLMCQ files in every published schema: the real legacy files and generated ones in the other schemas."""

import json

import pytest

from llavidal_core.evaluation.mcq_files import MCQFormatError, load_mcq_file, parse_numbered_lists


def test_reads_the_real_lemma_tc_file(shared_data):
    path = shared_data / "adlmcq" / "LEGACY-LEMMA-TC.json"
    loaded = load_mcq_file(path)
    assert loaded.schema == "lemma-tc-legacy"
    assert len(loaded.questions) == len(json.loads(path.read_text())) == 528
    first = loaded.questions[0]
    assert first.video == "28l-12-1-2" and first.video_path == "28l-12-1-2_0_552.mp4"
    assert first.video_id == "28l-12-1-2_0_552" and first.answer == "C" and first.choices["C"] == "work-on plant"
    assert set(first.choices) == set("ABCDEF")


def test_reads_the_real_charades_ar_file(shared_data):
    path = shared_data / "adlmcq" / "LEGACY-Charades-AR.json"
    raw = json.loads(path.read_text())
    loaded = load_mcq_file(path)
    assert loaded.schema == "charades-ar-legacy"
    assert len(loaded.questions) == len(raw) == 1814
    for record, question in zip(raw[:50], loaded.questions[:50]):
        assert question.choices[question.answer] == ", ".join(record["Ground Truth"])
    summary = loaded.summary()
    assert summary["num_questions"] == 1814 and sum(summary["answer_distribution"].values()) == 1814


def test_numbered_lists_keep_commas_and_brackets_inside_strings():
    assert parse_numbered_lists("1. ['a, b', 'c'] 2. ['d [x]'] 3. []") == [["a, b", "c"], ["d [x]"], []]
    with pytest.raises(ValueError, match="jumps"):
        parse_numbered_lists("1. ['a'] 3. ['b']")


def write(tmp_path, data, name="questions.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "record, schema, answer, choice_text",
    [
        ({"video_filename": "v1.mp4", "question": "q?", "answer_choices": {"A": "x", "B": "y"},
          "ground_truth_letter": "B"}, "adlmcq", "B", "y"),
        ({"video_id": "clips/v1.mp4", "question": "q?", "choices": {"1": "x", "2": "y", "3": "z", "4": "w"},
          "ground_truth": "z", "output": "earlier", "prediction": "C"}, "smarthome-ar-legacy", "C", "z"),
        ({"video_path": "/data/tsu/v1_3.mp4", "question": "q?", "options": {"A": "x", "B": "y", "C": "z", "D": "w"},
          "correct_answer": "D"}, "tsu-tc-legacy", "D", "w"),
    ],
    ids=["current", "smarthome", "tsu"],
)
def test_other_schemas_as_list_and_as_keyed_object(tmp_path, record, schema, answer, choice_text):
    for data in ([record, record], {"0": record, "1": record}):
        loaded = load_mcq_file(write(tmp_path, data))
        assert loaded.schema == schema and len(loaded.questions) == 2
        question = loaded.questions[0]
        assert question.answer == answer and question.choices[answer] == choice_text
        assert question.video_id == "v1" or question.video_id == "v1_3"


def test_unknown_schema_lists_the_fields_found(tmp_path):
    path = write(tmp_path, [{"clip": "a.mp4", "ask": "q?", "opts": []}])
    with pytest.raises(MCQFormatError) as error:
        load_mcq_file(path)
    assert str(path) in str(error.value) and "['ask', 'clip', 'opts']" in str(error.value)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"answer": "G"}, "not one of the choices"),
        ({"choices": []}, "non-empty object"),
        ({"choices": {"A": 1}}, "map labels to strings"),
    ],
)
def test_broken_records_name_the_record(tmp_path, bad, message):
    good = {"video_id": "v", "question": "q?", "choices": {"A": "x", "B": "y"}, "answer": "A", "start_frame": 0,
            "end_frame": 9}
    path = write(tmp_path, [good, good | bad])
    with pytest.raises(MCQFormatError, match=rf"record '1' \(lemma-tc-legacy\): .*{message}"):
        load_mcq_file(path)


def test_a_record_of_another_schema_in_the_file_is_named(tmp_path):
    good = {"video_id": "v", "question": "q?", "choices": {"A": "x"}, "answer": "A", "start_frame": 0, "end_frame": 9}
    path = write(tmp_path, [good, {"video_id": "v"}])
    with pytest.raises(MCQFormatError, match=r"record '1' does not follow the lemma-tc-legacy schema"):
        load_mcq_file(path)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(MCQFormatError, match="broken.json: not valid JSON"):
        load_mcq_file(path)
    with pytest.raises(MCQFormatError, match="no such questions file"):
        load_mcq_file(tmp_path / "absent.json")
    with pytest.raises(MCQFormatError, match="holds no questions"):
        load_mcq_file(write(tmp_path, []))


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply to read"),
    ("[" + "1" * 5000 + "]", "not valid JSON"),  # an integer too long to convert is a ValueError, not a decode error
    ('{"0": {"video_id": "v"}, "0": {"video_id": "w"}}', "the key '0' appears twice in one JSON object"),
], ids=["deep-list", "deep-object", "long-integer", "repeated-key"])
def test_hostile_json_is_a_format_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "hostile.json"
    path.write_text(text)
    with pytest.raises(MCQFormatError, match=rf"hostile.json: .*{message}"):
        load_mcq_file(path)


def test_a_repeated_field_inside_a_record_is_not_silently_dropped(tmp_path):
    path = tmp_path / "questions.json"
    path.write_text('[{"video_id": "v", "question": "q?", "choices": {"A": "x", "B": "y"}, "answer": "A", '
                    '"answer": "B", "start_frame": 0, "end_frame": 9}]')
    with pytest.raises(MCQFormatError, match="the key 'answer' appears twice"):
        load_mcq_file(path)


def test_unreadable_files_are_format_errors(tmp_path):
    with pytest.raises(MCQFormatError, match="is a folder, not a questions file"):
        load_mcq_file(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"question": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(MCQFormatError, match="latin.json: not valid JSON \\(not UTF-8 text"):
        load_mcq_file(latin)


def test_a_huge_value_is_shown_short_in_the_error(tmp_path):
    record = {"video_id": "v", "question": "q?", "choices": {"A": "x"}, "answer": "Z" * 100_000,
              "start_frame": 0, "end_frame": 9}
    with pytest.raises(MCQFormatError) as error:
        load_mcq_file(write(tmp_path, [record]))
    assert "'answer' is 'ZZZ" in str(error.value) and len(str(error.value)) < 300


def test_check_of_a_deeply_nested_file_exits_2(tmp_path, capsys, llavidal_plugins):
    from llavidal_core.cli import main

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["eval", "mcq", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "deep.json: not a questions file: its JSON is nested too deeply" in err and err.count("\n") == 1
