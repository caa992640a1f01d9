"""The transformers `Trainer`, as llavidal uses it, and the callbacks that log a run.

`LlavidalTrainer` adds five things to `Trainer`: every log record gets ``tokens_per_second`` (non-padding
tokens, all processes) and ``samples_skipped`` (from the data pre-scan); the embedding matrices are kept out
of weight decay when only their cue-token rows train (decay would move the frozen base rows too); while
the LM is frozen (no ``llm``, no LoRA, no FSDP/DeepSpeed sharding), a checkpoint holds the adapter (projectors
and cue-token rows, what can change) instead of the whole model, as the original saved only its
``mm_projector.bin``: a few MB instead of a 7B model's tens of GB, resumed exactly all the same; a NaN or
infinite loss or gradient norm stops the run (`NonFiniteTrainingError`) before the optimizer applies the
step, where `Trainer` would log it and go on to save a model of NaN; and a save that fails (a full disk)
says so, naming the folder (`llavidal_core.write_failures`).
`JsonlLogCallback` appends every record to ``log.jsonl``; `EpochCallback` gives the dataset the epoch for its
modality-dropout draws. DDP, FSDP and DeepSpeed come with `Trainer` itself (``train.trainer_args``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from llavidal_core.errors import LlavidalError
from llavidal_core.write_failures import reporting_write_failures

progress = logging.getLogger("llavidal.train")  # the compact progress lines (`llavidal_core.cli` shows them)


class NonFiniteTrainingError(LlavidalError):
    """The loss or the gradient norm became NaN or infinite; the run stopped before applying that step."""


class LlavidalTrainer(Trainer):
    def __init__(self, *args: Any, samples_skipped: int = 0, stage: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.samples_skipped = samples_skipped
        self.stage = stage
        self._resuming_from: str | None = None
        self._last_log = (time.perf_counter(), 0)
        self.add_callback(_TokenRateBaseline(self))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        now, tokens = time.perf_counter(), self.state.num_input_tokens_seen
        last_time, last_tokens = self._last_log
        if "loss" in logs and now > last_time:
            logs["tokens_per_second"] = round((tokens - last_tokens) / (now - last_time), 1)
        self._last_log = (now, tokens)
        logs["samples_skipped"] = self.samples_skipped
        super().log(logs, start_time)

    def checkpoints_hold_only_the_adapter(self) -> bool:
        model = self.accelerator.unwrap_model(self.model)
        lora = any("lora_" in name for name, _ in model.named_parameters())
        return ("llm" not in model.trainable_parts and not lora
                and not self.is_fsdp_enabled and not self.is_deepspeed_enabled)

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss).all()):
            raise NonFiniteTrainingError(self._stop_message(f"the loss is {loss.item()}"))
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm)
        # with fp16 loss scaling an infinite norm is an overflow the scaler handles by skipping the step
        if grad_norm is not None and self.accelerator.scaler is None and not math.isfinite(float(grad_norm)):
            raise NonFiniteTrainingError(self._stop_message(f"the gradient norm is {float(grad_norm)}"))
        return grad_norm

    def _stop_message(self, problem: str) -> str:
        stage = f"stage {self.stage}: " if self.stage else ""
        return (f"{stage}training stopped at step {self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f}): "
                f"{problem}. The step was not applied and no final model was saved (checkpoints of earlier steps "
                f"in {self.args.output_dir} are kept); lower the learning rate or look for NaN/inf in the data")

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        folder = output_dir or self.args.output_dir
        with reporting_write_failures(folder, "the checkpoint" if _internal_call else "the model"):
            if _internal_call and self.checkpoints_hold_only_the_adapter():  # a checkpoint, not the final output
                if self.args.should_save:
                    self.accelerator.unwrap_model(self.model).save_adapter(output_dir, self.processing_class)
                return
            super().save_model(output_dir, _internal_call)

    def _save_checkpoint(self, model, trial) -> None:
        with reporting_write_failures(self.args.output_dir, f"checkpoint-{self.state.global_step}"):
            super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from llavidal_core.modeling.adapter import ADAPTER_WEIGHTS_NAME
        from llavidal_core.training.model_setup import copy_stage_weights

        if not (Path(resume_from_checkpoint) / ADAPTER_WEIGHTS_NAME).is_file():
            self._resuming_from = resume_from_checkpoint
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        unwrapped = self.accelerator.unwrap_model(model if model is not None else self.model)
        copy_stage_weights(unwrapped, Path(resume_from_checkpoint), unwrapped.config.cue_names)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # Trainer only warns about a resumed checkpoint's missing keys and trains on with the fresh weights
        unwrapped = self.accelerator.unwrap_model(self.model)
        tied = set(getattr(unwrapped, "all_tied_weights_keys", None) or {})
        missing = sorted(set(load_result.missing_keys) - tied)
        if missing:
            from llavidal_core.modeling.modeling_llavidal import MissingWeightsError, describe_keys

            raise MissingWeightsError(f"{self._resuming_from or 'the checkpoint loaded'}: lacks {len(missing)} "
                                      f"weight(s) of the model, which would go on from fresh values: "
                                      f"{describe_keys(missing)}")
        super()._issue_warnings_after_load(load_result)

    def get_decay_parameter_names(self, model) -> list[str]:
        names = super().get_decay_parameter_names(model)
        unwrapped = self.accelerator.unwrap_model(model)
        if "embeddings" in unwrapped.trainable_parts and "llm" not in unwrapped.trainable_parts:
            from llavidal_core.modeling.modeling_llavidal import embedding_weights

            embedding_ids = {id(weight) for weight in embedding_weights(unwrapped)}
            masked = {name for name, p in model.named_parameters() if id(p) in embedding_ids}
            names = [name for name in names if name not in masked]
        return names


class _TokenRateBaseline(TrainerCallback):
    """Start the tokens/s clock when training starts (after a resume, from the restored token count)."""

    def __init__(self, trainer: LlavidalTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._last_log = (time.perf_counter(), state.num_input_tokens_seen)


class CompactProgressCallback(TrainerCallback):
    """Progress as one short line per log (on ``llavidal.train``, which the CLI prints on stderr), for output
    that is not a terminal (a file, a CI log):
    ``llavidal train: stage main: step 40/120, epoch 1.0, loss 0.5437, lr 2.9e-03, 1186 tokens/s``.

    It replaces the Trainer's progress bar (which would write thousands of bar updates to a file) and its
    printed log dicts; the full records still go to ``log.jsonl``.
    """

    def __init__(self, stage: str):
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        parts = [f"step {state.global_step}/{state.max_steps}", f"epoch {float(logs.get('epoch', 0)):.1f}",
                 f"loss {float(logs['loss']):.4f}"]
        if "learning_rate" in logs:
            parts.append(f"lr {float(logs['learning_rate']):.1e}")
        if "tokens_per_second" in logs:
            parts.append(f"{float(logs['tokens_per_second']):.0f} tokens/s")
        progress.info("llavidal train: stage %s: %s", self.stage, ", ".join(parts))


class JsonlLogCallback(TrainerCallback):
    """Append each log record (with step, epoch and stage) to a JSON-lines file, on the main process; each
    step's record once, also across a resume (`llavidal_core.training.run_log.forget_steps_after`)."""

    def __init__(self, path: Path, stage: str):
        self.path = Path(path)
        self.stage = stage

    def on_train_begin(self, args, state, control, **kwargs):
        """On a resume, forget the records of steps after the checkpoint's: they are about to be logged again."""
        from llavidal_core.training.run_log import forget_steps_after

        if state.is_world_process_zero:
            forget_steps_after(self.path, self.stage, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch, **logs}
        append_jsonl(self.path, record)


class EpochCallback(TrainerCallback):
    """Tell the dataset which epoch is starting (it seeds modality dropout with it)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
