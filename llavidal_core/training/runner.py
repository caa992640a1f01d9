"""Run a recipe: for each stage, build the model, start it from earlier stages, prepare the data, train, save.

Read top to bottom, `run_stage` is the whole recipe. Each stage writes to its own folder (the recipe's
``output_dir`` itself when there are no stages): ``checkpoint-N/`` every ``save_steps`` steps (the model, or
only its adapter while the LM is frozen; optimizer, scheduler, RNG and data position, for ``--resume``), then
the final output with the processor beside it, and ``llavidal_training.json`` marking the stage done.
``log.jsonl`` in ``output_dir`` gathers the logs of every stage.

The final output is what ``train.save`` asks for: ``full``, the whole model (LoRA merged into the LM),
loadable with ``from_pretrained``; ``adapter``, what training added to the base LM, loadable with
``from_adapter``: ``adapter.safetensors`` (projectors and cue-token rows) and, for a LoRA run, ``lora/``, a
PEFT adapter folder that ``PeftModel.from_pretrained`` loads onto the base LM; ``both``, the two in one folder.
Unset, a LoRA run saves the adapter and any other run the full model.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from llavidal_core.devices import has_cuda
from llavidal_core.errors import LlavidalError
from llavidal_core.training.recipe import Recipe, StagePlan
from llavidal_core.write_failures import reporting_write_failures

STAGE_DONE_FILE = "llavidal_training.json"
LOG_FILE = "log.jsonl"

progress = logging.getLogger("llavidal.train")  # what `llavidal train` reports as it runs


def run_recipe(recipe: Recipe, *, resume: bool = False) -> list[Path]:
    """Run every stage of ``recipe`` in order; finished stages are skipped when resuming."""
    plans = recipe.stage_plans()
    for plan in plans:
        _check_fresh_or_resumable(plan, resume)
    outputs = []
    for plan in plans:
        if resume and (plan.output_dir / STAGE_DONE_FILE).is_file():
            _say(f"stage {plan.name}: already done, skipping ({plan.output_dir})")
        else:
            run_stage(recipe, plan, resume=resume)
        outputs.append(plan.output_dir)
    return outputs


def run_stage(recipe: Recipe, plan: StagePlan, *, resume: bool = False) -> Path:
    from transformers import set_seed

    from llavidal_core.data.dataset import InstructionCollator
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.training import model_setup
    from llavidal_core.training.trainer import (CompactProgressCallback, EpochCallback, JsonlLogCallback,
                                                LlavidalTrainer, append_jsonl)

    set_seed(plan.train.seed)
    main_process = _is_main_process()
    on_terminal = sys.stderr.isatty()
    if not on_terminal:  # a log file gets no progress-bar redraws (loading and saving weights included)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

    # The processor knows every cue of the recipe, whatever this stage uses: same token ids in every stage.
    cues = model_setup.resolve_cue_specs(recipe.cues)
    provenance = model_setup.feature_provenance(recipe.cues)  # how each cue's features were made
    cues = model_setup.describe_cues_by_their_features(cues, provenance)
    processor = LlavidalProcessor(model_setup.load_tokenizer(recipe.model), cues,
                                  use_start_end=plan.data.use_start_end, template=plan.data.template,
                                  # the base LM's own template prompts it at inference too
                                  **({"inference_template": "base"} if plan.data.template == "base" else {}),
                                  model_max_length=plan.data.model_max_length,
                                  tokenization=plan.data.tokenization)

    # The data: this stage's cues only; the pre-scan decides what is kept, and says so.
    dataset = build_dataset(recipe, plan, processor)
    report = dataset.report
    if main_process:
        for line in [f"stage {plan.name}: cues {plan.cues}", *report.lines()]:
            _say(line)
        append_jsonl(Path(recipe.output_dir) / LOG_FILE,
                     {"stage": plan.name, "event": "data", **report.as_dict()})
    if len(dataset) == 0:
        raise LlavidalError(f"stage {plan.name}: no sample is left to train on (see the data report above)")

    # The model: the base LM with every cue of the recipe.
    model = model_setup.build_model(recipe.model, cues, processor)

    # MMPro hand-off: the LM from the last earlier stage that fine-tuned it, then each earlier stage's
    # projectors and cue rows of the cues it trained.
    stages = {earlier.name: earlier for earlier in recipe.stage_plans()}
    lm_sources = [s for s in plan.init_from if model_setup.stage_trained_language_model(stages[s].train)]
    if lm_sources:
        model_setup.copy_language_model_weights(model, stages[lm_sources[-1]].output_dir)
        _say(f"stage {plan.name}: started the LM from stage {lm_sources[-1]}")
    for source in plan.init_from:
        model_setup.copy_stage_weights(model, stages[source].output_dir, stages[source].cues)
        _say(f"stage {plan.name}: started {stages[source].cues} from stage {source}")

    # Standardised cues met for the first time: fit their feature statistics on this stage's data.
    for cue in [c for c in model.unfitted_standardized_cues() if c in plan.cues]:
        mean, std, rows = dataset.feature_statistics(cue, progress=main_process)
        model.fit_feature_statistics(cue, mean, std)
        _say(f"stage {plan.name}: {cue} features standardised with the statistics of {rows:,} rows")

    model_setup.apply_trainable(model, plan.train, plan.cues)
    counts = model_setup.count_parameters(model)
    for line in counts.lines():
        _say(line)

    trainer = LlavidalTrainer(
        model=model,
        args=training_arguments(plan),
        train_dataset=dataset,
        data_collator=InstructionCollator(processor),
        processing_class=processor,
        callbacks=[JsonlLogCallback(Path(recipe.output_dir) / LOG_FILE, plan.name), EpochCallback(dataset)],
        samples_skipped=report.num_skipped,
        stage=plan.name,
    )
    if not on_terminal:  # one line per logging step, not bar redraws and raw dicts
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(CompactProgressCallback(plan.name))
    checkpoint = latest_checkpoint(plan.output_dir) if resume else None
    if checkpoint is not None:
        _say(f"stage {plan.name}: resuming from {checkpoint}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    # The final output (train.save): the adapter (LoRA unmerged, in lora/) and/or the full model (LoRA merged),
    # with the processor beside it.
    with reporting_write_failures(plan.output_dir, f"the stage {plan.name} model"):
        if trainer.is_world_process_zero():  # the encoders that made the features, so inference makes them again
            plan.output_dir.mkdir(parents=True, exist_ok=True)
            model.config.cue_encoders = {cue: record.bundle(plan.output_dir, cue).to_dict()
                                         for cue, (record, _) in provenance.items()}
        if plan.train.saves_adapter and trainer.is_world_process_zero():
            model.save_adapter(plan.output_dir, processor)  # before merging: lora/ holds the LoRA itself
        if plan.train.saves_full:
            if plan.train.lora is not None:
                model_setup.merge_lora(model)
            trainer.save_model(str(plan.output_dir))  # the Trainer pushes the folder (adapter too) itself
        elif trainer.is_world_process_zero() and plan.train.hub is not None:
            push_output_folder(plan.output_dir, plan.train.hub, plan.name)
        if trainer.is_world_process_zero():
            summary = {"stage": plan.name, "cues": plan.cues, "init_from": plan.init_from,
                       "save": plan.train.resolved_save, "global_step": trainer.state.global_step,
                       "train_loss": result.training_loss, "parameters": counts.by_part, "data": report.as_dict()}
            (plan.output_dir / STAGE_DONE_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if trainer.is_world_process_zero():
        _say(f"stage {plan.name}: saved to {plan.output_dir}")
    trainer.accelerator.wait_for_everyone()
    return plan.output_dir


def build_dataset(recipe: Recipe, plan: StagePlan, processor: Any):
    """The stage's `InstructionDataset`: its cues' feature sources, the missing-cue policy, dropout, seed."""
    from llavidal_core.data.dataset import (InstructionDataset, open_feature_source, placeholders_of,
                                            read_training_samples)
    from llavidal_core.plugins import get_plugin_manager
    from llavidal_core.seed_cues import LLAVIDAL_CUES

    if plan.data.train is None:
        raise LlavidalError(f"stage {plan.name}: data.train names no instruction file")
    samples = read_training_samples(plan.data.train)
    sources = {}
    for cue in plan.cues:
        section = recipe.cue(cue)
        if section.features is None:
            raise LlavidalError(f"cues.{cue}.features: stage {plan.name} uses the cue but names no features folder")
        sources[cue] = open_feature_source(section.features, cue)
    other = placeholders_of([*LLAVIDAL_CUES, *(r.spec for r in get_plugin_manager().cues().values())])
    return InstructionDataset(
        samples, processor, sources, plan.cues, missing_cue=plan.data.missing_cue,
        dropout={cue: recipe.cue(cue).dropout for cue in plan.cues}, seed=plan.train.seed,
        other_placeholders=other, cache_features=plan.data.cache_features,
    )


def training_arguments(plan: StagePlan, *, for_this_machine: bool = True):
    """`TrainingArguments` from the stage's ``train`` section (``trainer_args`` passes anything else).

    ``for_this_machine=False`` checks everything but the precision flags (bf16, fp16, tf32), which
    `TrainingArguments` refuses on hardware without them: a ``--dry-run`` on a laptop checks a GPU recipe.
    """
    from transformers import TrainingArguments
    from transformers.integrations import is_tensorboard_available

    train = plan.train
    values = dict(
        output_dir=str(plan.output_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler,
        bf16=train.precision == "bf16",
        fp16=train.precision == "fp16",
        tf32=train.tf32 or None,
        activation_checkpointing=train.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        logging_steps=train.logging_steps,
        seed=train.seed,
        data_seed=train.seed,
        dataloader_num_workers=plan.data.num_workers,
        dataloader_pin_memory=has_cuda(),
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=True,
        report_to=(train.report_to if train.report_to is not None
                   else ["tensorboard"] if is_tensorboard_available() else "none"),
    )
    if _distributed_on_cpu():
        values["use_cpu"] = True  # torchrun without GPUs: accelerate then runs DDP over gloo
    if train.hub is not None:  # the only way a run uploads: the recipe's own train.hub section
        values.update(train.hub.training_arguments())
    values.update(train.trainer_args)
    if not for_this_machine:
        values.update(bf16=False, fp16=False, tf32=None)
    try:
        return TrainingArguments(**values)
    except (TypeError, ValueError) as exc:
        raise LlavidalError(f"stage {plan.name}: TrainingArguments refused the train settings ({exc})") from None


def push_output_folder(folder: Path, hub: Any, stage: str) -> None:
    """Upload a stage's saved output (not its checkpoints or logs) to ``hub.repo_id`` in one commit."""
    from huggingface_hub import HfApi

    from llavidal_core.hub import update_model_card

    if (folder / "config.json").is_file():  # the card names the repo it is uploaded to (title, snippets)
        update_model_card(folder, repo_id=hub.repo_id)
    api = HfApi()
    api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
    api.upload_folder(repo_id=hub.repo_id, folder_path=str(folder), revision=hub.revision,
                      commit_message=f"llavidal train: stage {stage}",
                      ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.jsonl", ".*"])


def latest_checkpoint(folder: Path) -> Path | None:
    """The last complete ``checkpoint-N`` in ``folder``: one whose ``trainer_state.json`` (written last) reads.

    A run killed while writing a checkpoint leaves it without that file; resuming then takes the one before.
    """
    if not folder.is_dir():
        return None
    steps = sorted((int(path.name.split("-")[1]), path) for path in folder.glob("checkpoint-*")
                   if path.is_dir() and path.name.split("-")[1].isdigit())
    for _, path in reversed(steps):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return path
    return None


def _has_checkpoints(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_dir() for path in folder.glob("checkpoint-*"))


def _check_fresh_or_resumable(plan: StagePlan, resume: bool) -> None:
    if resume:
        return
    if (plan.output_dir / STAGE_DONE_FILE).is_file() or _has_checkpoints(plan.output_dir):
        raise LlavidalError(f"{plan.output_dir} already holds a run (stage {plan.name}); pass --resume to continue "
                            "it, or choose another output_dir")


def _distributed_on_cpu() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_cuda()


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _say(message: str) -> None:
    """Tell the user how the run goes (the CLI shows it on stderr unless --quiet); the main process only."""
    if _is_main_process():
        progress.info("llavidal train: %s", message)
