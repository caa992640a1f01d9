"""``llavidal train`` when things go wrong: a loss that blows up, a disk that fills up; never a silent bad save."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llavidal_core.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = str(RECIPES / "tiny-llavidal.yaml")


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step_and_saves_no_model(in_tiny_root, capsys):
    # a learning rate of 1e30 turns every weight into inf after the first step, so the second loss is NaN
    code = main(["train", TINY, "output_dir=tiny/blowup", "train.learning_rate=1e30", "train.max_steps=4",
                 "train.save_steps=100", "train.logging_steps=1"])
    assert code == 1
    error = capsys.readouterr().err
    assert "stage main: training stopped at step 2" in error and "the loss is nan" in error
    out = in_tiny_root / "tiny" / "blowup"
    assert not (out / "model.safetensors").exists() and not (out / "llavidal_training.json").exists()
    assert not list(out.glob("checkpoint-*"))


def test_an_infinite_gradient_norm_stops_the_run_before_the_step_is_applied(in_tiny_root, capsys):
    # A base LM whose output weights are ~1e34: the logits and the loss stay finite (about 1e35), but the
    # gradients flowing back through the layers overflow float32, so the gradient norm is inf at step 1.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hot = in_tiny_root / "tiny" / "hot-llm"
    language_model = AutoModelForCausalLM.from_pretrained(in_tiny_root / "tiny" / "llm")
    with torch.no_grad():
        language_model.lm_head.weight.mul_(1e34 / language_model.lm_head.weight.abs().max())
    language_model.save_pretrained(hot)
    AutoTokenizer.from_pretrained(in_tiny_root / "tiny" / "llm").save_pretrained(hot)

    code = main(["train", TINY, "output_dir=tiny/gradblowup", "model.base=tiny/hot-llm", "train.max_steps=4",
                 "train.save_steps=100", "train.logging_steps=1"])
    assert code == 1
    error = capsys.readouterr().err
    assert "stage main: training stopped at step 1" in error and "the gradient norm is inf" in error
    assert not (in_tiny_root / "tiny" / "gradblowup" / "llavidal_training.json").exists()


def test_a_full_disk_during_the_final_save_names_the_folder_and_says_the_disk_is_full(in_tiny_root, capsys):
    out = in_tiny_root / "tiny" / "fulldisk"
    out.mkdir(parents=True)
    # transformers writes training_args.bin with torch.save beside the weights: on a full device that is
    # "unexpected pos N vs M" from torch's zip writer; /dev/full is a real device that is always full
    (out / "training_args.bin").symlink_to("/dev/full")
    assert main(["train", TINY, "output_dir=tiny/fulldisk", "train.max_steps=1", "train.save_steps=100"]) == 1
    error = capsys.readouterr().err
    assert "could not write the model to tiny/fulldisk" in error and "the disk is full" in error
    assert not (out / "llavidal_training.json").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are POSIX")
def test_a_file_size_limit_while_saving_is_named_with_the_checkpoint_folder(in_tiny_root):
    # A real failed write of the safetensors weights: the run is started with a 40 kB file-size limit, which
    # the logs and records stay under but the tiny model's weights (about 85 kB) do not.
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000)); "
              "from llavidal_core.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "LLAVIDAL_LOAD_PLUGINS": ""}
    run = subprocess.run([sys.executable, "-c", script, "train", TINY, "output_dir=tiny/sizelimit",
                          "train.max_steps=1", "train.save_steps=100"],
                         cwd=in_tiny_root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    # the run's last step writes a checkpoint first: that is the write that fails
    assert ("could not write the checkpoint to tiny/sizelimit/checkpoint-1: a file grew past the file-size limit"
            in run.stderr)
    assert not (in_tiny_root / "tiny" / "sizelimit" / "llavidal_training.json").exists()


def test_resuming_from_a_checkpoint_that_lacks_weights_is_an_error_naming_it(in_tiny_root, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    args = ["train", TINY, "output_dir=tiny/partial", "train.max_steps=2", "train.save_steps=1"]
    assert main(args) == 0
    out = in_tiny_root / "tiny" / "partial"
    for finished in ("llavidal_training.json", "model.safetensors"):
        (out / finished).unlink()  # as if killed after checkpoint-2
    weights = out / "checkpoint-2" / "model.safetensors"
    with safe_open(weights, framework="pt") as reader:
        kept = {key: reader.get_tensor(key) for key in reader.keys() if not key.startswith("projectors.pose.")}
        metadata = reader.metadata()
    save_file(kept, weights, metadata=metadata)
    capsys.readouterr()

    assert main([*args, "--resume"]) == 1
    error = capsys.readouterr().err
    assert "tiny/partial/checkpoint-2: lacks 2 weight(s) of the model" in error
    assert "projectors.pose.bias, projectors.pose.weight" in error
    assert not (out / "llavidal_training.json").exists()
