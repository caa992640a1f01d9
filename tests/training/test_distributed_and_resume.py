"""Scale-out and restarts: 2 processes under torchrun (gloo, CPU) match 1 process with the same global batch,
and a run killed after a checkpoint and resumed ends with the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llavidal_core.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny-llavidal.yaml"


def weights(folder):
    return load_file(folder / "model.safetensors")


def subprocess_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAVIDAL_", "RANK", "WORLD_SIZE", "MASTER_"))}
    env["LLAVIDAL_LOAD_PLUGINS"] = ""
    return env


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(in_tiny_root):
    common = ["train.max_steps=4", "train.save_steps=100"]
    assert main(["train", str(RECIPE), "output_dir=tiny/one", "train.batch_size=4", *common]) == 0
    launched = subprocess.run(
        [sys.executable, "-m", "llavidal_core", "train", str(RECIPE), "--nproc", "2", "output_dir=tiny/two",
         "train.batch_size=2", *common],
        cwd=in_tiny_root, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    one, two = weights(in_tiny_root / "tiny" / "one"), weights(in_tiny_root / "tiny" / "two")
    projector_keys = [key for key in one if key.startswith("projectors.")]
    assert len(projector_keys) == 6
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5, msg=key)
    # the runs moved the projectors far more than the tolerance
    from llavidal_core.training.runner import STAGE_DONE_FILE

    assert (in_tiny_root / "tiny" / "two" / STAGE_DONE_FILE).is_file()


@pytest.mark.slow
def test_killed_after_a_checkpoint_and_resumed_reaches_the_uninterrupted_weights(in_tiny_root):
    common = ["train.max_steps=8", "train.save_steps=4"]
    killed = in_tiny_root / "tiny" / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "llavidal_core", "train", str(RECIPE), "output_dir=tiny/killed", *common],
        cwd=in_tiny_root, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (killed / "checkpoint-4" / "trainer_state.json").is_file():
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert not (killed / "model.safetensors").exists(), "the run finished before it was killed"

    assert main(["train", str(RECIPE), "output_dir=tiny/killed", *common, "--resume"]) == 0
    assert main(["train", str(RECIPE), "output_dir=tiny/whole", *common]) == 0
    resumed, whole = weights(killed), weights(in_tiny_root / "tiny" / "whole")
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=1e-6, msg=key)
    initial = load_file(next((in_tiny_root / "tiny" / "llm").glob("*.safetensors")))
    moved = (whole["language_model.model.layers.0.mlp.up_proj.weight"]
             - initial["model.layers.0.mlp.up_proj.weight"]).abs().max()
    assert moved > 1e-3


@pytest.mark.slow
def test_a_frozen_lm_run_checkpoints_only_the_adapter_and_resumes_from_it_exactly(in_tiny_root):
    import shutil

    frozen = ["train.max_steps=4", "train.save_steps=2", "train.trainable=[projectors, embeddings]",
              "train.learning_rate=0.1"]
    assert main(["train", str(RECIPE), "output_dir=tiny/frozen", *frozen]) == 0
    first = in_tiny_root / "tiny" / "frozen"
    checkpoint = first / "checkpoint-2"
    assert (checkpoint / "adapter.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    assert (checkpoint / "optimizer.pt").is_file()

    (in_tiny_root / "tiny" / "frozen-resumed").mkdir()
    shutil.copytree(checkpoint, in_tiny_root / "tiny" / "frozen-resumed" / "checkpoint-2")
    assert main(["train", str(RECIPE), "output_dir=tiny/frozen-resumed", *frozen, "--resume"]) == 0
    whole, resumed = weights(first), weights(in_tiny_root / "tiny" / "frozen-resumed")
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=1e-6, msg=key)
    halfway = load_file(checkpoint / "adapter.safetensors")
    assert not torch.equal(halfway["projectors.video.weight"], whole["projectors.video.weight"])
