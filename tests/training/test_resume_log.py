"""``log.jsonl`` across a resume: a run that logged steps 1-4 and is resumed from its step-2 checkpoint logs steps 3
and 4 again; the log ends with each step's record once, those of the run whose weights were kept."""

import json
import shutil
from pathlib import Path

from llavidal_core.cli import main
from llavidal_core.training.run_log import forget_steps_after

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny-llavidal.yaml"


def step_records(log):
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r["stage"], r["step"]) for r in records if "loss" in r]


def test_a_resumed_run_logs_each_step_once(in_tiny_root):
    frozen = ["train.max_steps=4", "train.save_steps=2", "train.logging_steps=1",
              "train.trainable=[projectors, embeddings]"]
    first = in_tiny_root / "tiny" / "logged"
    assert main(["train", str(RECIPE), "output_dir=tiny/logged", *frozen]) == 0
    assert [step for _, step in step_records(first / "log.jsonl")] == [1, 2, 3, 4]

    # what a run killed after logging step 4 but before finishing leaves: its log and its step-2 checkpoint
    killed = in_tiny_root / "tiny" / "logged-killed"
    killed.mkdir()
    shutil.copytree(first / "checkpoint-2", killed / "checkpoint-2")
    first_log = (first / "log.jsonl").read_text()
    (killed / "log.jsonl").write_text(first_log + '{"stage": "torn')  # the kill came mid-line
    assert main(["train", str(RECIPE), "output_dir=tiny/logged-killed", *frozen, "--resume"]) == 0

    steps = step_records(killed / "log.jsonl")
    assert [step for _, step in steps] == [1, 2, 3, 4]
    resumed_lines = (killed / "log.jsonl").read_text().splitlines()
    assert all(line.startswith("{") and json.loads(line) for line in resumed_lines)


def test_forgetting_keeps_other_stages_and_records_without_a_step(tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"stage": "one", "event": "data", "kept": 3}, {"stage": "one", "step": 1, "loss": 2.0},
               {"stage": "two", "step": 5, "loss": 1.0}, {"stage": "one", "step": 6, "loss": 0.5}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))

    assert forget_steps_after(log, "one", 4) == 1
    assert [json.loads(line) for line in log.read_text().splitlines()] == records[:3]
    assert forget_steps_after(tmp_path / "missing.jsonl", "one", 0) == 0
