"""Built-in ``llavidal train RECIPE [key=value ...] [--dry-run] [--resume] [--nproc K]``.

``--dry-run`` resolves every component of the recipe (cues, projectors, the base LM's architecture from its
inline ``model.base_config``, stages, training arguments) and prints the parameter counts and what trains,
building the model on the ``meta`` device: no weights are loaded and the Hub is never reached.
``--nproc K`` runs the same command under ``torchrun --standalone --nproc_per_node K`` (one process per
device; gloo on CPU). Launching with ``torchrun ... -m llavidal_core train RECIPE`` directly works as well.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_core.hookspecs import hookimpl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="the recipe YAML file (see recipes/)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                        help="override recipe keys by dotted path, e.g. train.learning_rate=1e-4 "
                             "cues.video.features=feats/ (values are YAML); the flags may come among them")
    add_flags(parser)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve everything and print parameter counts; load no weights, reach no Hub")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run in output_dir: skip finished stages, resume from the last checkpoint")
    parser.add_argument("--nproc", type=int, metavar="K",
                        help="run K processes under torchrun (torch.distributed.run) on this machine")


def split_flags(args: argparse.Namespace) -> argparse.Namespace:
    """Take the flags given after the recipe (argparse leaves them among the overrides) out of ``overrides``."""
    flags = argparse.ArgumentParser(prog="llavidal train", add_help=False)
    add_flags(flags)
    flags.set_defaults(dry_run=args.dry_run, resume=args.resume, nproc=args.nproc)
    parsed, overrides = flags.parse_known_args(args.overrides)
    unknown = [item for item in overrides if item.startswith("-")]
    if unknown:
        raise LlavidalError(f"unknown option(s) {unknown} for 'llavidal train' (see --help)")
    parsed.recipe, parsed.overrides = args.recipe, overrides
    return parsed


def run(args: argparse.Namespace) -> int:
    from llavidal_core.training.recipe import load_recipe

    args = split_flags(args)
    recipe = load_recipe(args.recipe, args.overrides)
    if args.dry_run:
        return dry_run(recipe)
    if args.nproc is not None:
        return launch_torchrun(args)
    from llavidal_core.training.runner import run_recipe

    outputs = run_recipe(recipe, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        print(outputs[-1])
    return 0


def launch_torchrun(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise LlavidalError(f"--nproc must be at least 1, got {args.nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "llavidal_core", "train", str(args.recipe), *args.overrides]
    if args.resume:
        command.append("--resume")
    return subprocess.run(command, env=os.environ.copy()).returncode


def dry_run(recipe) -> int:
    from llavidal_core.training import model_setup
    from llavidal_core.training.runner import training_arguments

    cues = model_setup.resolve_cue_specs(recipe.cues)
    plans = recipe.stage_plans()
    print(f"model: {recipe.model.base or '(random init from base_config)'} "
          f"[{(recipe.model.base_config or {}).get('model_type', 'config from base')}, {recipe.model.dtype}]")
    for spec, section in zip(cues, recipe.cues):
        rows = spec.num_tokens if spec.num_tokens is not None else f"{spec.tokens_per_item} per item"
        features = section.features or "(none)"
        state = "" if section.features is None or Path(section.features).is_dir() else " (not found here)"
        print(f"cue {spec.name}: {spec.placeholder} -> {rows} x {spec.feature_dim}, projector {spec.projector}, "
              f"dropout {section.dropout}, features {features}{state}")
    for plan in plans:
        model = model_setup.build_meta_model(recipe.model, cues, plan.data.use_start_end)
        if plan.train.lora is None:  # LoRA needs peft and real modules; counted without it
            model_setup.apply_trainable(model, plan.train, plan.cues)
        else:
            model.set_trainable(plan.train.trainable)
        counts = model_setup.count_parameters(model)
        training_arguments(plan, for_this_machine=False)  # validates the Trainer settings
        data_state = "" if plan.data.train and Path(plan.data.train).is_file() else " (not found here)"
        print(f"stage {plan.name}: cues {plan.cues}, init_from {plan.init_from or '-'}, "
              f"trainable {plan.train.trainable}{' + lora r=' + str(plan.train.lora.r) if plan.train.lora else ''}, "
              f"save {plan.train.save}")
        print(f"  data {plan.data.train}{data_state}, missing_cue {plan.data.missing_cue}, "
              f"model_max_length {plan.data.model_max_length}")
        print(f"  {plan.train.epochs:g} epoch(s), batch {plan.train.batch_size} x accum "
              f"{plan.train.gradient_accumulation_steps} per device, lr {plan.train.learning_rate:g} "
              f"{plan.train.lr_scheduler}, warmup {plan.train.warmup_ratio:g}, {plan.train.precision}, "
              f"output {plan.output_dir}")
        for line in counts.lines():
            print(f"  {line}")
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("train",), help="train a model from a YAML recipe (see recipes/)", add_arguments=add_arguments, run=run)
