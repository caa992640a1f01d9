"""``llavidal eval describe`` end to end: a tiny model describes, a judge scores (local, HTTP, transformers serve)."""

import json

import pytest
import torch

from llavidal_core.cli import main
from llavidal_core.evaluation.description_files import TSU_DESCRIPTION_QUESTION
from llavidal_core.evaluation.judge_prompts import CRITERIA

RECORD = {"Q": "What does the person do in the video?", "A": "The person opens the fridge, then drinks milk.",
          "cons_Q1": "Describe the video.", "cons_Q2": "What happens in the video?",
          "cons_A": "A person takes milk from the fridge and drinks it."}
SCRIPTED_SCORES = {"factual accuracy": ("{'score': 4}", 4.0), "detail orientation": ('{"score": 3}', 3.0),
                   "contextual understanding": ('```json\n{"score": 5}\n```', 5.0),
                   "temporal understanding": ("{'score': 2.5}", 2.5),
                   "consistency of generative": ("{'score': 1}", 1.0)}
SUMMARY = "The person walks to the kitchen and drinks a glass of water."


def scripted_judge(messages):
    """Valid JSON scores per criterion, garbage for an item marked UNJUDGEABLE, a fixed TSU summary."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if "UNJUDGEABLE" in user:
        return "It is mostly right; I would give it a 4."
    if "summarization" in system:
        return SUMMARY
    return next(reply for key, (reply, _) in SCRIPTED_SCORES.items() if key in system)


def features(seed: int) -> torch.Tensor:
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(seed))  # the fake video cue: 4 rows of 8


@pytest.fixture
def charades(tmp_path, fake_video_plugins):
    """Four Charades-Descriptions records: three videos with features (the third UNJUDGEABLE), one without."""
    from llavidal_core.features import FeatureStore

    store = FeatureStore(tmp_path / "features")
    for index in range(3):
        store.write(f"video_{index}", "video", features(index))
    records = [RECORD | {"video_name": "video_0"}, RECORD | {"video_name": "video_1", "A": "The person sits.",
                                                             "cons_A": "Someone sits down."},
               RECORD | {"video_name": "video_2", "A": "UNJUDGEABLE", "cons_A": "UNJUDGEABLE"},
               RECORD | {"video_name": "not_extracted"}]
    questions = tmp_path / "charades_desc.json"
    questions.write_text(json.dumps(records))
    return questions, tmp_path / "features"


def describe(model, questions, features, tmp_path, *judge_options, name="report"):
    out = tmp_path / f"{name}.json"
    code = main(["eval", "describe", str(model), "--questions", str(questions), "--features", str(features),
                 "--max-new-tokens", "6", "--out", str(out), "--judge-cache", str(tmp_path / "judge.sqlite"),
                 *judge_options])
    assert code == 0
    return json.loads(out.read_text())


def test_http_judge_scores_failures_apart_and_a_rerun_asks_nothing(described_model, charades, tmp_path,
                                                                    openai_server, monkeypatch, capsys):
    monkeypatch.setenv("JUDGE_KEY", "k")
    openai_server.respond = scripted_judge
    options = ("--judge", openai_server.model, "--judge-url", openai_server.url, "--judge-key-env", "JUDGE_KEY")
    report = describe(described_model, *charades, tmp_path, *options)
    assert report["judge"] == f"openai-compatible scripted-judge at {openai_server.url} temperature=0"
    assert report["num_items"] == 3 and report["skipped_missing_video"] == 1
    for key, (_, score) in SCRIPTED_SCORES.items():
        criterion = CRITERIA[list(SCRIPTED_SCORES).index(key)]
        entry = report["criteria"][criterion]
        # the garbage-answered item is a failure, not a 0: the mean is over the two scored items alone
        assert (entry["mean"], entry["ci95"], entry["n"], entry["judge_failures"]) == (score, [score, score], 2, 1)
        assert entry["percent"] == score * 20
    assert report["criteria"]["average"]["mean"] == pytest.approx(3.1)
    assert report["judge_calls"] == len(openai_server.requests) == 2 * 5 + 5 * 3  # 3 attempts for each failure
    assert all(r["authorization"] == "Bearer k" and r["body"]["temperature"] == 0 for r in openai_server.requests)
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith(f"Judge: {report['judge']}")
    assert "| correctness | 4.000 | 4.000–4.000 | 2 | 1 |" in markdown
    assert "| ROUGE-L F1 |" in markdown and report["markdown"] in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "report.predictions.jsonl").read_text().splitlines()]
    assert [r["video_name"] for r in records] == ["video_0", "video_1", "video_2"]
    assert records[0]["scores"]["correctness"] == 4.0 and "judge_failures" not in records[0]
    assert records[2]["scores"]["correctness"] is None
    assert records[2]["judge_failures"]["correctness"]["replies"] == ["It is mostly right; I would give it a 4."] * 3

    rerun = describe(described_model, *charades, tmp_path, *options, name="rerun")
    assert len(openai_server.requests) == 25 and rerun["judge_calls"] == 0 and rerun["judge_cache_hits"] == 15
    assert rerun["criteria"] == report["criteria"] and rerun["reference_metrics"] == report["reference_metrics"]


def test_local_judge_end_to_end(described_model, charades, tmp_path, scripted_lm):
    judge = ("--judge", str(scripted_lm("{'score': 4}")))
    report = describe(described_model, *charades, tmp_path, *judge)
    assert report["judge"].startswith("transformers ") and report["judge_calls"] == 15  # greedy: asked once each
    for criterion in CRITERIA:
        assert report["criteria"][criterion] | {"ci95": None} == {"mean": 4.0, "ci95": None, "n": 3,
                                                                    "judge_failures": 0, "percent": 80.0}
    rerun = describe(described_model, *charades, tmp_path, *judge, name="rerun")
    assert rerun["judge_calls"] == 0 and rerun["judge_cache_hits"] == 15 and rerun["criteria"] == report["criteria"]


def test_garbage_judge_gives_failures_not_zeros(described_model, charades, tmp_path, garbage_lm_dir, capsys):
    report = describe(described_model, *charades, tmp_path, "--judge", str(garbage_lm_dir))
    for criterion in CRITERIA:
        assert report["criteria"][criterion] == {"mean": None, "ci95": None, "n": 0, "judge_failures": 3,
                                                 "percent": None}
    assert "average" not in report["criteria"] and "| temporal | – |  | 0 | 3 |" in report["markdown"]
    assert "temporal: 3 judge failures" in capsys.readouterr().err


@pytest.mark.slow
def test_transformers_serve_judge_end_to_end(described_model, charades, tmp_path, transformers_server):
    url, model = transformers_server
    report = describe(described_model, *charades, tmp_path, "--judge", model, "--judge-url", url,
                      "--judge-attempts", "2", "--limit", "2")
    assert report["judge"] == f"openai-compatible {model} at {url} temperature=0"
    assert report["judge_calls"] == 2 * 5 * 2  # two videos, five criteria, two attempts at each
    assert all(report["criteria"][c]["judge_failures"] == 2 and report["criteria"][c]["mean"] is None
               for c in CRITERIA)


def test_without_a_judge_reference_metrics_alone_and_deterministic(described_model, charades, tmp_path):
    first = describe(described_model, *charades, tmp_path, name="first")
    second = describe(described_model, *charades, tmp_path, name="second")
    assert first["judge"] is None and "criteria" not in first and "judge_calls" not in first
    assert set(first["reference_metrics"]) == {"bleu4", "chrf", "rougeL_f1"}
    assert first["reference_metrics"] == second["reference_metrics"]
    assert first["markdown"].startswith("Judge: none (reference metrics only)")


def test_tsu_protocol_clips_in_order_summaries_then_scores(described_model, tmp_path, openai_server,
                                                           fake_video_plugins):
    from llavidal_core.features import FeatureStore

    store = FeatureStore(tmp_path / "features")
    for seed, clip in enumerate(["vidA_clip10", "vidA_clip2", "vidA_clip1", "vidAB_clip1", "vidB_clip1"]):
        store.write(clip, "video", features(100 + seed))
    questions = tmp_path / "tsu_desc.json"
    questions.write_text(json.dumps({"vidA": "The person cooks.", "vidB": "The person reads.", "vidC": "Absent."}))
    openai_server.respond = scripted_judge
    report = describe(described_model, questions, tmp_path / "features", tmp_path, "--judge", openai_server.model,
                      "--judge-url", openai_server.url)
    records = [json.loads(line) for line in (tmp_path / "report.predictions.jsonl").read_text().splitlines()]
    vid_a = records[0]
    assert vid_a["clips"] == ["vidA_clip1", "vidA_clip2", "vidA_clip10"] and records[1]["clips"] == ["vidB_clip1"]
    assert vid_a["description"] == " ".join(answers[0] for answers in vid_a["clip_answers"])
    assert vid_a["consistency"][1] == " ".join(answers[2] for answers in vid_a["clip_answers"])
    bodies = [r["body"]["messages"] for r in openai_server.requests]
    assert bodies[0][1]["content"] == (
        f"The mega caption of the video is: {vid_a['description']}. Please generate a detailed 300-word summary "
        "that describes the video content, focusing on actions, objects, and the environment.")
    assert vid_a["summaries"] == {"description": SUMMARY, "consistency_1": SUMMARY, "consistency_2": SUMMARY}
    scored = [messages[1]["content"].split("\n\nProvide")[0] for messages in bodies
              if "factual accuracy" in messages[0]["content"]]
    assert scored == [f"Please evaluate the following video-based question-answer pair:\n\nQuestion: "
                      f"{TSU_DESCRIPTION_QUESTION}\nCorrect Answer: {answer}\nPredicted Answer: {SUMMARY}"
                      for answer in ("The person cooks.", "The person reads.")]
    assert report["protocol"] == "tsu" and report["skipped_missing_video"] == 1 and report["summary_failures"] == 0
    assert report["criteria"]["correctness"]["mean"] == 4.0 and report["criteria"]["consistency"]["n"] == 2


def test_a_tsu_summary_never_given_fails_its_criteria(tmp_path):
    from llavidal_core.evaluation.description_answers import DescriptionPrediction
    from llavidal_core.evaluation.description_files import DescriptionItem, TSU_CONSISTENCY_QUESTIONS
    from llavidal_core.evaluation.description_scores import judge_item
    from llavidal_core.evaluation.judge_cache import JudgeCache
    from llavidal_core.evaluation.judges import Judge
    from llavidal_core.evaluation.judging import JudgeSession

    class Replies(Judge):
        identity = "no summary of 'broken' captions"

        def _reply(self, messages, max_tokens):
            user = messages[-1]["content"]
            return ("" if "BROKEN" in user else SUMMARY) if "mega caption" in user else scripted_judge(messages)

    item = DescriptionItem("v", "v", TSU_DESCRIPTION_QUESTION, "The person cooks.", TSU_CONSISTENCY_QUESTIONS,
                           "The person cooks.")
    prediction = DescriptionPrediction("v", "v", "BROKEN clip answers", ("fine one", "fine two"), ["v_clip1"],
                                       [["BROKEN clip answers", "fine one", "fine two"]])
    session = JudgeSession(Replies(), JudgeCache(tmp_path / "c.sqlite"), attempts=2)
    judged = judge_item(session, item, prediction, "tsu")
    assert judged.summaries["description"].failed and len(judged.summaries["description"].replies) == 2
    assert judged.criteria["correctness"].failure.startswith("no summary of the clips' descriptions (no parsable")
    assert judged.criteria["consistency"].value == 1.0
    assert session.judge.calls == 2 + 1 + 1 + 1  # description summary twice, two summaries, consistency


def test_tsu_clips_from_a_videos_folder(described_model, tmp_path, scripted_lm, fake_video_plugins):
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in ["P02_clip2", "P02_clip1", "P03_clip1"]:
        (videos / f"{clip}.mp4").write_bytes(b"not decoded: the fake encoder hashes the path")
    questions = tmp_path / "tsu.json"
    questions.write_text(json.dumps({"P02": "The person cooks.", "P05": "Absent."}))
    code = main(["eval", "describe", str(described_model), "--questions", str(questions), "--videos", str(videos),
                 "--max-new-tokens", "4", "--out", str(tmp_path / "r.json"), "--judge-cache",
                 str(tmp_path / "j.sqlite"), "--judge", str(scripted_lm("{'score': 2}"))])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    (record,) = [json.loads(line) for line in (tmp_path / "r.predictions.jsonl").read_text().splitlines()]
    assert record["clips"] == ["P02_clip1", "P02_clip2"] and report["skipped_missing_video"] == 1
    # the scripted judge's one reply is its summary too, so every criterion scores that text
    assert record["summaries"]["description"] == "{'score': 2}" and report["criteria"]["temporal"]["mean"] == 2.0


def test_describe_usage_errors(described_model, charades, tmp_path, capsys):
    questions, features = charades
    for extra in (["--judge-url", "http://127.0.0.1:1/v1"], ["--videos", str(tmp_path)],
                  ["--judge", "x", "--judge-attempts", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", "describe", str(described_model), "--questions", str(questions), "--features",
                  str(features), *extra])
        assert exit_info.value.code == 2
    assert main(["eval", "describe", str(described_model), "--questions", str(questions), "--features",
                 str(features), "--judge", str(tmp_path / "no-judge-here")]) == 1
    assert "no-judge-here: no such model folder" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"video_name": "v"}]))
    assert main(["eval", "describe", str(described_model), "--questions", str(broken), "--features",
                 str(features)]) == 1
    assert f"{broken}: record 0 lacks" in capsys.readouterr().err
