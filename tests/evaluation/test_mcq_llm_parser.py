"""``eval mcq --mode generate --parser llm``: the judge reads the letter, as the original's mcq_parsing_llm.py."""

import dataclasses
import json

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.evaluation.mcq_answers import parse_choice_letter
from llavidal_core.testing.tiny_fusion import TINY_VIDEO, build_tiny_llavidal

CHOICES = {"A": "wave", "B": "clap"}
VIDEO = dataclasses.replace(TINY_VIDEO, num_tokens=2, feature_dim=4)


@pytest.fixture
def toy(tmp_path, llavidal_plugins):
    """An untrained tiny model and four wave/clap questions (answers A, B, A, B) with features."""
    from llavidal_core.features import FeatureStore

    model, processor = build_tiny_llavidal(cues=(VIDEO,), seed=5)
    model.save_pretrained(tmp_path / "model", processor=processor)
    store = FeatureStore(tmp_path / "features")
    records = []
    for index in range(4):
        store.write(f"clip_{index}", "video", torch.randn(2, 4, generator=torch.Generator().manual_seed(index)))
        records.append({"video_filename": f"clip_{index}.mp4", "question": "What is the person doing?",
                        "answer_choices": CHOICES, "ground_truth_letter": "AB"[index % 2]})
    (tmp_path / "toy.json").write_text(json.dumps(records))
    return tmp_path


def run_llm_parser(toy, *judge_options):
    code = main(["eval", "mcq", str(toy / "model"), "--questions", str(toy / "toy.json"), "--features",
                 str(toy / "features"), "--mode", "generate", "--parser", "llm", "--judge-cache",
                 str(toy / "judge.sqlite"), "--out", str(toy / "report.json"), "--predictions",
                 str(toy / "predictions.jsonl"), *judge_options])
    assert code == 0
    records = [json.loads(line) for line in (toy / "predictions.jsonl").read_text().splitlines()]
    return json.loads((toy / "report.json").read_text()), records


def test_local_judge_reads_the_letter(toy, scripted_lm):
    report, records = run_llm_parser(toy, "--judge", str(scripted_lm("The best answer is: (B)")))
    assert [r["predicted"] for r in records] == ["B"] * 4 and all(r["judge_letter"] == "B" for r in records)
    assert report["accuracy"]["toy"]["accuracy"] == 0.5 and report["judge_failures"] == {"toy": 0}
    assert report["parser"] == "llm" and report["judge"].startswith("transformers ")
    assert all(r["predicted_rule"] == parse_choice_letter(r["generated"], CHOICES) for r in records)
    rule_right = sum(r["predicted_rule"] == r["answer"] for r in records) / 4
    assert report["rule_parser_accuracy"]["toy"]["accuracy"] == rule_right
    assert "Letters read by the rule parser" in report["markdown"]


def test_http_judge_z_is_no_answer_and_the_prompt_is_the_originals(toy, openai_server):
    openai_server.respond = lambda messages: "The best answer is: (Z)"
    report, records = run_llm_parser(toy, "--judge", openai_server.model, "--judge-url", openai_server.url)
    assert [r["predicted"] for r in records] == [None] * 4 and report["none_of_the_options"] == {"toy": 4}
    assert report["no_answer"] == {"toy": 4} and report["judge_failures"] == {"toy": 0}
    prompts = [r["body"]["messages"][0]["content"] for r in openai_server.requests]
    # one call per distinct answer: the same answer to the same question is read from the cache
    assert report["judge_calls"] == len(prompts) == len({r["generated"] for r in records})
    assert f"Question: What is the person doing?\nOptions: (A) wave (B) clap\nAnswer: {records[0]['generated']}\n" \
           in prompts[0]


def test_garbage_judge_is_counted_as_failures(toy, garbage_lm_dir, capsys):
    report, records = run_llm_parser(toy, "--judge", str(garbage_lm_dir))
    assert [r["predicted"] for r in records] == [None] * 4 and report["judge_failures"] == {"toy": 4}
    assert all(r["judge_failure"].startswith("no parsable reply in 1 attempt(s)") for r in records)
    assert "toy: 4 judge replies never named a letter" in capsys.readouterr().err


@pytest.mark.parametrize("options", [["--parser", "llm", "--judge", "x"], ["--mode", "generate", "--parser", "llm"]])
def test_llm_parser_usage_errors(toy, options):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "mcq", str(toy / "model"), "--questions", str(toy / "toy.json"), "--features",
              str(toy / "features"), *options])
    assert exit_info.value.code == 2
