"""PoseCLIP training: align pooled pose embeddings with CLIP text embeddings of action prompts.

Each step encodes a batch of skeletons, normalises the projected embeddings and scores them against the
normalised text embeddings of every action's prompt (``"a person {action}"``) with a learned temperature;
the loss is the cross-entropy of the right action (the class-text contrastive loss of ActionCLIP and
ViFi-CLIP, which PoseCLIP follows). The text tower is frozen by default, so the action embeddings are
computed once. At the end, zero-shot accuracy (nearest action embedding) is measured on the held-out set
and the run is saved as a PoseCLIP folder (see `llavidal_pose.zero_shot`).

A run is described by a YAML config (``recipes/poseclip-*.yaml``) with the sections ``encoder`` (the
`PoseCueEncoder` arguments), ``text``, ``data``, ``training``, plus ``output_dir`` and ``seed``; any
value can be overridden with ``section.key=value``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from llavidal_core.devices import choose_device
from llavidal_core.errors import UsageError
from llavidal_core.training.recipe import RecipeError, apply_override
from llavidal_pose.encoder import PoseCueEncoder
from llavidal_pose.skeleton import SkeletonSequence, load_skeleton
from llavidal_pose.synthetic import SYNTHETIC_ACTIONS, synthetic_dataset
from llavidal_pose.text import DEFAULT_PROMPT_TEMPLATE, DEFAULT_TEXT_MODEL, ActionTextEncoder, action_prompts
from llavidal_pose.zero_shot import TEXT_ENCODER_FOLDER, PoseCLIPInfo, zero_shot_accuracy

INITIAL_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


class ConfigError(UsageError):
    """A training config that cannot be used as written (a usage error: ``llavidal pose train`` exits with 2)."""


@dataclass
class TextConfig:
    model: str = DEFAULT_TEXT_MODEL
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    freeze: bool = True


@dataclass
class DataConfig:
    """``source: synthetic`` generates `llavidal_pose.synthetic` motions; ``source: manifest`` reads JSON-lines
    files of ``{"path": ..., "action": ...}`` (paths relative to the manifest's folder)."""

    source: str = "synthetic"
    actions: list[str] | None = None
    train_per_action: int = 64
    eval_per_action: int = 16
    train_manifest: str | None = None
    eval_manifest: str | None = None


@dataclass
class OptimConfig:
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    log_every: int = 25
    augment: bool = True
    device: str = "auto"


@dataclass
class TrainConfig:
    output_dir: str
    seed: int = 0
    encoder: dict[str, Any] = field(default_factory=dict)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: OptimConfig = field(default_factory=OptimConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        if not isinstance(raw, dict):
            raise ConfigError(f"a training config is a mapping of sections, got {type(raw).__name__}")
        sections = {"text": TextConfig, "data": DataConfig, "training": OptimConfig}
        values = _known(cls, raw, "the config")
        if "output_dir" not in values:
            raise ConfigError("the config has no output_dir")
        for name, section_class in sections.items():
            section = values.get(name) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"section {name!r} must be a mapping, got {section!r}")
            values[name] = section_class(**_known(section_class, section, f"section {name!r}"))
        if not isinstance(values.get("encoder", {}), dict):
            raise ConfigError("section 'encoder' must be a mapping of PoseCueEncoder arguments")
        optim = values["training"]
        for key in ("steps", "batch_size", "log_every"):
            if getattr(optim, key) < 1:
                raise ConfigError(f"section 'training': {key} must be at least 1, got {getattr(optim, key)}")
        return cls(**values)


def _known(dataclass_type: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against the fields of ``dataclass_type``; numbers written as strings are converted
    (YAML reads ``3e-3``, without a dot, as a string)."""
    hints = get_type_hints(dataclass_type)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; known keys: {sorted(hints)}")
    checked = dict(values)
    for key, value in values.items():
        expected = hints[key]
        if expected in (int, float) and not isinstance(value, bool):
            try:
                checked[key] = expected(value)
                if expected is int and checked[key] != float(value):
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {key} must be {'an integer' if expected is int else 'a number'}, "
                                  f"got {value!r}") from None
        elif expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return checked


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config and apply ``section.key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    for override in overrides:
        try:
            apply_override(raw, override)
        except RecipeError as exc:
            raise ConfigError(str(exc)) from None
    return TrainConfig.from_dict(raw)


# -- data ---------------------------------------------------------------------------------------------


def _read_manifest(path: str | os.PathLike) -> tuple[list[SkeletonSequence], list[str]]:
    path = Path(path)
    sequences, actions = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the manifest ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            file, action = record["path"], record["action"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path}:{number}: expected a JSON object with 'path' and 'action'") from None
        sequences.append(load_skeleton(path.parent / file))
        actions.append(str(action))
    return sequences, actions


@dataclass
class ActionData:
    """Training and held-out recordings, each labelled by an index into its own action list.

    The held-out actions may differ from the training ones (a zero-shot split holds whole actions out):
    training contrasts each recording with the prompts of `train_actions`, evaluation picks among the
    prompts of `eval_actions`.
    """

    train_actions: list[str]
    train: list[SkeletonSequence]
    train_labels: list[int]
    eval_actions: list[str]
    held_out: list[SkeletonSequence]
    eval_labels: list[int]


def _ordered(names: list[str], order: list[str] | None) -> list[str]:
    if order is None:
        return sorted(set(names))
    unknown = sorted(set(names) - set(order))
    if unknown:
        raise ConfigError(f"the manifests name actions missing from data.actions: {unknown}")
    return [action for action in order if action in set(names)]


def load_data(config: DataConfig, seed: int) -> ActionData:
    """The recordings the config names: generated (``synthetic``) or listed in manifests (``manifest``)."""
    if config.source == "synthetic":
        actions = list(config.actions or SYNTHETIC_ACTIONS)
        train, train_labels = synthetic_dataset(actions, config.train_per_action, seed=seed)
        held_out, held_out_labels = synthetic_dataset(actions, config.eval_per_action, seed=seed + 1)
        return ActionData(actions, train, train_labels, actions, held_out, held_out_labels)
    if config.source == "manifest":
        if not config.train_manifest or not config.eval_manifest:
            raise ConfigError("data.source 'manifest' needs data.train_manifest and data.eval_manifest")
        train, train_names = _read_manifest(config.train_manifest)
        held_out, eval_names = _read_manifest(config.eval_manifest)
        train_actions = _ordered(train_names, config.actions)
        eval_actions = _ordered(eval_names, config.actions)
        return ActionData(train_actions, train, [train_actions.index(a) for a in train_names],
                          eval_actions, held_out, [eval_actions.index(a) for a in eval_names])
    raise ConfigError(f"unknown data.source {config.source!r}: use 'synthetic' or 'manifest'")


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random turn about the canonical vertical (±15°), scale (0.9-1.1) and 5 mm joint noise; zeros stay zero."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(15)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(n, 3, 3)
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, -sin, sin, cos
    rotation[:, 2, 2] = 1.0
    scale = 0.9 + 0.2 * torch.rand(n, 1, 1, 1, 1, generator=generator)
    present = (x != 0).any(dim=1, keepdim=True)
    turned = torch.einsum("nij,njtvm->nitvm", rotation.to(x.dtype), x) * scale.to(x.dtype)
    noise = 0.005 * torch.randn(x.shape, generator=generator).to(x.dtype)
    return torch.where(present, turned + noise, torch.zeros_like(x))


# -- training -----------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    output_dir: Path
    actions: list[str]
    losses: list[tuple[int, float]]
    eval_accuracy: float
    logit_scale: float


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train_poseclip(config: TrainConfig, log: Callable[[str], None] = print) -> TrainingResult:
    """Train a PoseCLIP as ``config`` says, measure held-out zero-shot accuracy, save it to ``output_dir``."""
    optim = config.training
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    try:
        device = choose_device(optim.device)
    except UsageError as exc:
        raise ConfigError(f"section 'training': {exc}") from None

    text = ActionTextEncoder.from_pretrained(config.text.model).to(device)
    try:
        encoder = PoseCueEncoder(**config.encoder).to(device)
    except TypeError as exc:
        raise ConfigError(f"section 'encoder': {exc}") from None
    if encoder.projection.out_features != text.embed_dim:
        raise ConfigError(f"encoder.embed_dim is {encoder.projection.out_features} but the text tower "
                          f"{config.text.model} embeds into {text.embed_dim} dimensions")

    data = load_data(config.data, config.seed)
    prompts = action_prompts(data.train_actions, config.text.prompt_template)
    every_action = list(dict.fromkeys([*data.train_actions, *data.eval_actions]))
    clashes = text.indistinct_prompts(action_prompts(every_action, config.text.prompt_template))
    if clashes:
        first, second, ids = clashes[0]
        raise ConfigError(f"the text tower {config.text.model} reads the prompts {first!r} and {second!r} as the "
                          f"same tokens {ids} (words missing from its vocabulary?), so PoseCLIP could never tell "
                          "those actions apart")
    train_x = torch.from_numpy(np.stack([encoder.prepare(s) for s in data.train]))
    train_y = torch.tensor(data.train_labels)
    eval_x = torch.from_numpy(np.stack([encoder.prepare(s) for s in data.held_out])).to(device)
    eval_y = torch.tensor(data.eval_labels)

    text.requires_grad_(not config.text.freeze)
    text.train(not config.text.freeze)
    with torch.set_grad_enabled(not config.text.freeze):
        fixed_action_embeddings = None if not config.text.freeze else text(prompts).detach()
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / INITIAL_TEMPERATURE), device=device))
    parameters = [*encoder.parameters(), logit_scale]
    if not config.text.freeze:
        parameters += list(text.parameters())
    decayed = [p for p in parameters if p.ndim >= 2]  # no decay for biases, norms, gates and the temperature
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": optim.weight_decay},
                                   {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=optim.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(optim.warmup_steps, optim.steps))

    encoder.train()
    losses: list[tuple[int, float]] = []
    running, order, cursor = [], torch.randperm(len(train_x), generator=generator), 0
    batch_size = min(optim.batch_size, len(train_x))
    for step in range(1, optim.steps + 1):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(train_x), generator=generator), 0
        index = order[cursor:cursor + batch_size]
        cursor += batch_size
        x = train_x[index]
        if optim.augment:
            x = augment(x, generator)
        pose = F.normalize(encoder.embed(x.to(device)), dim=-1)
        action_embeddings = fixed_action_embeddings if fixed_action_embeddings is not None else text(prompts)
        logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * pose @ action_embeddings.T
        loss = F.cross_entropy(logits, train_y[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optim.grad_clip:
            nn.utils.clip_grad_norm_(parameters, optim.grad_clip)
        optimizer.step()
        scheduler.step()
        running.append(loss.item())
        if step % optim.log_every == 0 or step == optim.steps:
            losses.append((step, sum(running) / len(running)))
            log(f"step {step}/{optim.steps}  loss {losses[-1][1]:.4f}  logit scale {logit_scale.exp().item():.1f}")
            running = []

    text.eval()
    with torch.no_grad():
        eval_embeddings = text(action_prompts(data.eval_actions, config.text.prompt_template))
    accuracy = zero_shot_accuracy(encoder, eval_x, eval_y, eval_embeddings)
    log(f"held-out zero-shot accuracy {accuracy:.3f} over {len(eval_y)} recordings of "
        f"{len(data.eval_actions)} actions")
    scale = min(logit_scale.exp().item(), MAX_LOGIT_SCALE)
    output_dir = _save(config, encoder, text, data, scale, losses, accuracy)
    return TrainingResult(output_dir, data.train_actions, losses, accuracy, scale)


def _save(config: TrainConfig, encoder: PoseCueEncoder, text: ActionTextEncoder, data: ActionData,
          logit_scale: float, losses: list[tuple[int, float]], accuracy: float) -> Path:
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    encoder.cpu().eval().save_pretrained(output_dir)
    text_model = config.text.model
    if not config.text.freeze:
        text.model.save_pretrained(output_dir / TEXT_ENCODER_FOLDER)
        text.tokenizer.save_pretrained(output_dir / TEXT_ENCODER_FOLDER)
        text_model = TEXT_ENCODER_FOLDER
    elif Path(text_model).is_dir():
        text_model = str(Path(text_model).resolve())
    metrics = {"eval_zero_shot_accuracy": accuracy, "eval_actions": data.eval_actions,
               "final_loss": losses[-1][1] if losses else None, "steps": config.training.steps}
    PoseCLIPInfo(text_model, config.text.prompt_template, data.train_actions, logit_scale, metrics).save(output_dir)
    with open(output_dir / "train_log.jsonl", "w") as handle:
        for step, loss in losses:
            handle.write(json.dumps({"step": step, "loss": loss}) + "\n")
    return output_dir
