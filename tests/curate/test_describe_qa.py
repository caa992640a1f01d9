"""``llavidal curate describe`` and ``qa`` with real local chat models: a scripted Llama answering valid JSON
(-> descriptions, pairs, an instruction file the project's loader reads, resume), a scripted Llama answering
almost-JSON and a random Llama answering noise (-> reported in errors.jsonl, nothing written, nothing patched)."""

from __future__ import annotations

import json

import pytest

from llavidal_core.cli import main
from llavidal_core.data.instructions import read_instruction_file
from llavidal_core.evaluation.judge_replies import UnparsableReply
from llavidal_curate.llm_replies import parse_qa_list, parse_qa_pair
from text_fixtures import DESCRIPTION_REPLY, QA_REPLY, register_text_plugin, save_garbage_lm, save_scripted_lm

IDS = ("001_video_001", "001_video_002")


@pytest.fixture(autouse=True)
def text_commands(llavidal_plugins):
    register_text_plugin(llavidal_plugins)


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    made = {name: save_scripted_lm(tmp_path_factory.mktemp(name), reply) for name, reply in (
        ("describe", DESCRIPTION_REPLY), ("qa", QA_REPLY),
        ("qa_unclosed", '[{"Q": "What happens?", "A": "Someone drinks water."}'))}
    made["garbage"] = save_garbage_lm(tmp_path_factory.mktemp("garbage"))
    return made


@pytest.fixture
def inputs(tmp_path):
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({i: [f"a person at a table in {i}.", "the person drinks."] for i in IDS}))
    actions = tmp_path / "action_mapping.json"
    actions.write_text(json.dumps({i: "Actions performed by the person in the video are drink water, sit down."
                                   for i in IDS + ("001_video_999",)}))
    return captions, actions


def _llm(model):
    return ["--llm", str(model), "--device", "cpu", "--dtype", "float32", "--max-tokens", "40", "--no-progress"]


def test_replies_are_parsed_strictly():
    assert parse_qa_pair('{"Q": "q?", "A": "a."}') == {"Q": "q?", "A": "a."}
    assert parse_qa_pair("{'Q': 'q?', 'A': 'a.'}") == {"Q": "q?", "A": "a."}  # the original's Python literal
    assert parse_qa_list('[{"Q": "q?", "A": "a."}]') == [{"Q": "q?", "A": "a."}]
    for bad in ('{"Q": "q?", "A": "a."', 'Sure! {"Q": "q?", "A": "a."}', '{"Q": "q?"}', '{"Q": "", "A": "a"}',
                "[]", '[{"Q": "q?", "A": "a."}', "", "noise"):
        with pytest.raises(UnparsableReply):
            parse_qa_list(bad) if bad.startswith("[") else parse_qa_pair(bad)


def test_describe_then_qa_write_an_instruction_file_the_loader_reads(tmp_path, inputs, lms):
    captions, actions = inputs
    described = tmp_path / "described"
    assert main(["curate", "describe", "--captions", str(captions), "--action-mapping", str(actions),
                 "--out", str(described), *_llm(lms["describe"])]) == 0
    merged = json.loads((described / "dense_descriptions.json").read_text())
    assert merged == {i: {"Q": "Describe the video in detail.", "A": "Someone drinks water then sits down."}
                      for i in IDS}
    assert json.loads((described / f"{IDS[0]}.json").read_text())["actions"].startswith("Actions performed")

    qa = tmp_path / "qa"
    qa_args = ["curate", "qa", "--captions", str(captions), "--descriptions", str(described), "--out", str(qa),
               *_llm(lms["qa"])]
    assert main(qa_args) == 0
    samples = read_instruction_file(qa / "adlx_QAs_for_training.json")
    assert [s.sample_id for s in samples] == [IDS[0], IDS[0], IDS[1], IDS[1]]  # a summary and a details pair each
    assert samples[0].conversation[0]["value"] == "What happens?\n<video><object><human_pose>"
    assert samples[1].conversation[0]["value"] == "<video><object><human_pose>\nWhat happens?"
    assert samples[0].conversation[1] == {"from": "gpt", "value": "Someone drinks water."}
    assert samples[0].feature_files == {"video": f"{IDS[0]}.pkl", "object": f"{IDS[0]}_object.pkl",
                                        "pose": f"{IDS[0]}_pose.pkl"}
    assert samples[0].video_id == IDS[0]

    stamps = {p.name: p.stat().st_mtime_ns for p in qa.glob("001_*.json")}
    assert main(qa_args + ["--cues", "video"]) == 0  # resumed: no video asked again, the file rewritten
    assert {p.name: p.stat().st_mtime_ns for p in qa.glob("001_*.json")} == stamps
    video_only = read_instruction_file(qa / "adlx_QAs_for_training.json")
    assert video_only[0].conversation[0]["value"] == "What happens?\n<video>"
    assert video_only[0].feature_files == {"video": f"{IDS[0]}.pkl"}


def test_garbage_description_replies_are_reported_not_patched(tmp_path, inputs, lms):
    captions, actions = inputs
    out = tmp_path / "described"
    assert main(["curate", "describe", "--captions", str(captions), "--action-mapping", str(actions),
                 "--out", str(out), *_llm(lms["garbage"])]) == 3
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["video_id"] for e in errors) == list(IDS)
    assert all("no parsable reply" in e["error"] for e in errors)
    assert not list(out.glob("*.json"))  # no description written, no merged file


def test_an_unclosed_qa_list_is_reported_not_patched(tmp_path, inputs, lms):
    # the original's enforce_closing_bracket would add the missing "]"; here the video is reported
    captions, _ = inputs
    descriptions = tmp_path / "dense_descriptions.json"
    descriptions.write_text(json.dumps({IDS[0]: {"Q": "q", "A": "Someone drinks."}}))
    out = tmp_path / "qa"
    assert main(["curate", "qa", "--captions", str(captions), "--descriptions", str(descriptions),
                 "--out", str(out), *_llm(lms["qa_unclosed"])]) == 3
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in errors] == [IDS[0]] and "adlx_qa_summary" in errors[0]["error"]
    assert not (out / f"{IDS[0]}.json").exists()
    assert json.loads((out / "adlx_QAs_for_training.json").read_text()) == []


def test_describe_names_the_mapping_that_lacks_a_video(tmp_path, inputs, lms):
    captions, _ = inputs
    actions = tmp_path / "partial.json"
    actions.write_text(json.dumps({IDS[0]: "Actions performed by the person in the video are drink water."}))
    assert main(["curate", "describe", "--captions", str(captions), "--action-mapping", str(actions),
                 "--out", str(tmp_path / "o"), *_llm(lms["describe"])]) == 2
