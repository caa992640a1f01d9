"""Deterministic MCQ scoring: exact log-likelihoods, a tiny model that learned the answers, the CLI."""

import dataclasses
import json

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.evaluation.mcq_answers import parse_choice_letter
from llavidal_core.evaluation.mcq_eval import MCQEvaluation
from llavidal_core.evaluation.mcq_files import MCQuestion
from llavidal_core.evaluation.mcq_scoring import (
    MCQPrediction,
    answer_log_likelihoods,
    mcq_prompt,
    option_answer,
    score_by_generation,
    score_by_log_likelihood,
)
from llavidal_core.testing.tiny_fusion import TINY_VIDEO, build_tiny_llavidal

CHOICES = {"A": "wave", "B": "clap"}
VIDEO = dataclasses.replace(TINY_VIDEO, num_tokens=2, feature_dim=4)


def question(answer: str, video: str = "clip_0.mp4") -> MCQuestion:
    return MCQuestion("0", video, "What is the person doing?", CHOICES, answer, "toy")


def class_features(label: str, seed: int) -> torch.Tensor:
    """Features whose sign says the action: + for wave (A), - for clap (B), with noise."""
    generator = torch.Generator().manual_seed(seed)
    sign = 1.0 if label == "A" else -1.0
    return sign + 0.3 * torch.randn(VIDEO.num_tokens, VIDEO.feature_dim, generator=generator)


@pytest.fixture(scope="module")
def trained_toy():
    """A tiny model trained (plain Adam, in the test) to answer "(A) wave" or "(B) clap" from the features."""
    torch.manual_seed(0)
    model, processor = build_tiny_llavidal(cues=(VIDEO,))
    model.set_trainable(["projectors", "embeddings", "llm"])
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(60):
        labels = ["A", "B"] * 4
        conversations = [[{"from": "human", "value": mcq_prompt(question(l), ["<video>"])},
                          {"from": "gpt", "value": option_answer(l, CHOICES[l])}] for l in labels]
        batch = processor(conversations, [{"video": class_features(l, step * 8 + i)} for i, l in enumerate(labels)])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), processor


def test_prompt_follows_the_llavidal_evaluation_wording():
    assert mcq_prompt(question("A"), ["<video>"]) == (
        "What is the person doing? The output should be the choice among one of the following choices. "
        "Choices are (A) wave (B) clap\n<video>"
    )
    assert mcq_prompt(question("A")).endswith("(B) clap")  # no cues, no trailing line


def test_batched_scores_equal_each_option_scored_alone(trained_toy):
    model, processor = trained_toy
    features = {"video": class_features("A", 999)}
    prediction = score_by_log_likelihood(model, processor, question("A"), features, normalize="sum")
    for letter, text in CHOICES.items():
        alone = processor([[{"from": "human", "value": mcq_prompt(question("A"), ["<video>"])},
                            {"from": "gpt", "value": option_answer(letter, text)}]], [features])
        with torch.no_grad():
            expected = -model(**alone).loss * (alone["labels"] != -100).sum()
        assert prediction.scores[letter] == pytest.approx(float(expected), abs=1e-4)


def test_mean_normalisation_divides_by_answer_length(trained_toy):
    model, processor = trained_toy
    batch = processor([[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "(A) wave"}]], [None])
    with torch.no_grad():
        total = answer_log_likelihoods(model, batch, "sum")
        mean = answer_log_likelihoods(model, batch, "mean")
    n_answer = int((batch["labels"][:, 1:] != -100).sum())
    assert torch.allclose(mean * n_answer, total)


def test_trained_model_gets_held_out_questions_right(trained_toy):
    model, processor = trained_toy
    right = 0
    for seed in range(10):
        label = "AB"[seed % 2]
        prediction = score_by_log_likelihood(model, processor, question(label), {"video": class_features(label, 10_000 + seed)})
        right += prediction.correct
    assert right >= 9


def test_generation_mode_reads_the_letter(trained_toy):
    model, processor = trained_toy
    prediction = score_by_generation(model, processor, question("B"), {"video": class_features("B", 20_000)})
    assert prediction.generated is not None
    assert prediction.predicted == "B", prediction.generated


def test_eval_mcq_command_end_to_end(trained_toy, tmp_path, capsys, llavidal_plugins):
    from llavidal_core.features import FeatureStore

    model, processor = trained_toy
    model.save_pretrained(tmp_path / "model", processor=processor)
    store = FeatureStore(tmp_path / "features")
    records = []
    for index in range(6):
        label = "AB"[index % 2]
        store.write(f"clip_{index}", "video", class_features(label, 30_000 + index))
        records.append({"video_filename": f"clip_{index}.mp4", "question": "What is the person doing?",
                        "answer_choices": CHOICES, "ground_truth_letter": label})
    records.append(records[0] | {"video_filename": "no_features.mp4"})
    questions = tmp_path / "toy.json"
    questions.write_text(json.dumps(records))
    report_path = tmp_path / "report.json"
    code = main(["eval", "mcq", str(tmp_path / "model"), "--questions", str(questions),
                 "--features", str(tmp_path / "features"), "--out", str(report_path),
                 "--predictions", str(tmp_path / "predictions.jsonl")])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["accuracy"]["toy"]["n"] == 6 and report["accuracy"]["toy"]["accuracy"] >= 5 / 6
    assert report["skipped_missing_features"] == {"toy": 1}
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 6
    assert "| toy |" in capsys.readouterr().out


def write_toy_benchmark(root, count: int) -> tuple:
    """A feature store and an ADLMCQ file of ``count`` wave/clap questions under ``root``."""
    from llavidal_core.features import FeatureStore

    store = FeatureStore(root / "features")
    records = []
    for index in range(count):
        label = "AB"[index % 2]
        store.write(f"clip_{index}", "video", class_features(label, 30_000 + index))
        records.append({"video_filename": f"clip_{index}.mp4", "question": "What is the person doing?",
                        "answer_choices": CHOICES, "ground_truth_letter": label})
    questions = root / "toy.json"
    questions.write_text(json.dumps(records))
    return root / "features", questions


def test_generate_mode_reports_answers_without_a_letter(tmp_path, capsys, llavidal_plugins):
    model, processor = build_tiny_llavidal(cues=(VIDEO,), seed=5)  # untrained: its answers mostly name no choice
    model.save_pretrained(tmp_path / "model", processor=processor)
    features, questions = write_toy_benchmark(tmp_path, 4)
    code = main(["eval", "mcq", str(tmp_path / "model"), "--questions", str(questions), "--features", str(features),
                 "--mode", "generate", "--out", str(tmp_path / "report.json"),
                 "--predictions", str(tmp_path / "predictions.jsonl")])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    unread = sum(record["predicted"] is None for record in records)
    assert unread > 0 and report["no_answer"] == {"toy": unread}
    assert all(record["predicted"] == parse_choice_letter(record["generated"], CHOICES) for record in records)
    assert report["markdown"].splitlines()[0] == "| task | accuracy | 95% CI | n | no answer |"
    assert report["markdown"].splitlines()[2].endswith(f"| 4 | {unread} |")
    captured = capsys.readouterr()
    assert report["markdown"] in captured.out and f"toy: {unread} answers name no choice" in captured.err


def test_no_answer_is_counted_per_task_and_overall():
    predictions = [MCQPrediction("0", "lemma", "v0", "A", None, {}, generated="hmm"),
                   MCQPrediction("1", "lemma", "v1", "B", "B", {}, generated="(B)"),
                   MCQPrediction("2", "tsu", "v2", "A", None, {}, generated="no idea")]
    report = MCQEvaluation(predictions, mode="generate").report()
    assert report["no_answer"] == {"lemma": 1, "tsu": 1, "overall": 2}
    assert report["accuracy"]["lemma"]["accuracy"] == 0.5 and report["accuracy"]["overall"]["n"] == 3
    assert "| overall | 0.333 |" in report["markdown"] and report["markdown"].endswith("| 3 | 2 |")
    assert "no_answer" not in MCQEvaluation(predictions, mode="loglik").report()


def test_eval_mcq_check(shared_data, capsys, tmp_path, llavidal_plugins):
    assert main(["eval", "mcq", "--check", str(shared_data / "adlmcq" / "LEGACY-LEMMA-TC.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["schema"] == "lemma-tc-legacy" and summary["num_questions"] == 528
    assert summary["choices_per_question"] == {"6": 528}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"clip": "x"}]))
    assert main(["eval", "mcq", "--check", str(broken)]) == 2
    assert "['clip']" in capsys.readouterr().err


def test_eval_mcq_without_model_is_a_usage_error(llavidal_plugins, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "mcq", "--questions", "x.json"])
    assert exit_info.value.code == 2
