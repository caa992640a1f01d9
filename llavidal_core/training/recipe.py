"""Training recipes: a YAML file read into typed dataclasses, with ``key=value`` overrides on dotted paths.

A recipe has the sections ``model`` (the base LM: a path or repo id in ``base``, its architecture inline in
``base_config`` for ``--dry-run``), ``cues`` (a list: name, features folder, projector, modality dropout,
spec fields), ``data`` (instruction file, missing-cue policy, sequence budget), ``train`` (what trains, the
optimiser and schedule, precision, checkpoints), optional ``stages`` (a curriculum: each stage names the cues
it uses, the earlier stages it starts from and its own ``data`` / ``train`` overrides) and ``output_dir``.

Nothing leaves the machine unless the recipe says so in its own fields: ``train.hub`` uploads the trained
model to the Hugging Face Hub, ``train.report_to`` names the experiment trackers. ``train.trainer_args``
passes other `TrainingArguments` fields (``fsdp``, ``deepspeed``, ...) but refuses the upload and
reporting keys (`UPLOAD_TRAINER_ARGS`) and the keys a recipe field already sets (`RECIPE_TRAINER_ARGS`),
each with an error naming the key and the recipe field to use instead.

Overrides address keys by dotted path (``train.learning_rate=1e-4``); list items are addressed by index
(``cues.0.features=...``) or by their ``name`` (``cues.video.features=...``, ``stages.merge.train.epochs=2``).
Values are parsed as YAML (``true``, ``[a, b]``, ``{r: 8}``). Every error names the key it is about.
Relative paths are taken from the current directory.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from llavidal_core.errors import LlavidalError

TRAINABLE_PARTS = ("llm", "projectors", "embeddings")
DEFAULT_STAGE = "main"

# `TrainingArguments` fields that upload or report to a service: never through train.trainer_args.
UPLOAD_TRAINER_ARGS = {"push_to_hub": "train.hub", "report_to": "train.report_to"}
UPLOAD_TRAINER_ARG_PREFIXES = {"push_to_hub_": "train.hub", "hub_": "train.hub", "trackio_": "train.report_to"}
# `TrainingArguments` fields the runner sets from a recipe field: set that field instead.
RECIPE_TRAINER_ARGS = {
    "output_dir": "output_dir", "num_train_epochs": "train.epochs", "max_steps": "train.max_steps",
    "per_device_train_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps",
    "learning_rate": "train.learning_rate", "weight_decay": "train.weight_decay",
    "warmup_ratio": "train.warmup_ratio", "warmup_steps": "train.warmup_ratio",
    "lr_scheduler_type": "train.lr_scheduler", "bf16": "train.precision", "fp16": "train.precision",
    "tf32": "train.tf32", "gradient_checkpointing": "train.gradient_checkpointing",
    "activation_checkpointing": "train.gradient_checkpointing", "save_steps": "train.save_steps",
    "save_total_limit": "train.save_total_limit", "logging_steps": "train.logging_steps", "seed": "train.seed",
    "data_seed": "train.seed", "dataloader_num_workers": "data.num_workers",
}


class RecipeError(LlavidalError):
    """A recipe file or override is malformed; the message names the key."""


@dataclass
class ModelSection:
    """The base causal LM.

    ``base``: a folder or Hub repo id holding the LM's weights and tokenizer. ``base_config``: its
    architecture as a config dict with ``model_type`` (lets ``--dry-run`` work without the weights).
    ``tokenizer``: where the tokenizer is, when not with ``base``. ``dtype``: the weights' dtype.
    """

    base: str | None = None
    base_config: dict | None = None
    tokenizer: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str | None = None


@dataclass
class CueSection:
    """One cue: its spec (seed cue, installed plugin, or inline) and where its features are.

    ``spec`` holds `CueSpec` fields that override (or, for a cue nobody registers, define) the spec;
    ``projector`` and ``standardize`` are shortcuts for two of them. ``features``: a feature store folder
    or a folder of legacy ``.pkl`` files. ``dropout``: the probability of zeroing the cue's features for a
    sample (the original's ``*_mask_prob``).
    """

    name: str
    features: str | None = None
    projector: str | None = None
    standardize: bool | None = None
    dropout: float = 0.0
    spec: dict = field(default_factory=dict)


@dataclass
class DataSection:
    """The instruction data: ``train`` is an ADL-X style JSON / JSON-lines file.

    ``missing_cue``: what a sample gets for a cue whose feature file is missing: ``drop`` (its placeholder
    is removed from the text) or ``zeros`` (zero features, as the original does).
    ``template``: ``vicuna_v1_1`` (the original's training template; prompts then use ``llavidal_v1``) or
    ``base`` (the base LM's own chat template, for training and prompts). ``tokenization``:
    ``native`` (the tokenizer as it is) or ``sentencepiece_legacy`` (the original LLAVIDAL's token ids, for
    LLaMA/LLaVA SentencePiece tokenizers); saved with the model's processor. ``cache_features``: keep every
    feature tensor in memory after its first read, instead of reading its file again each epoch (for
    feature sets that fit in RAM; the numbers are the same).
    """

    train: str | None = None
    missing_cue: Literal["drop", "zeros"] = "drop"
    model_max_length: int = 2048
    use_start_end: bool = True
    template: str = "vicuna_v1_1"
    tokenization: Literal["native", "sentencepiece_legacy"] = "native"
    num_workers: int = 0
    cache_features: bool = False


@dataclass
class LoraSection:
    """LoRA on the LM's linear layers, through peft (``pip install 'llavidal-core[train]'``)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class HubSection:
    """Uploading a stage's output to the Hugging Face Hub, which happens only when a recipe has this section.

    ``repo_id``: the model repo, ``"org/name"``. ``private``: create it private (the default). ``strategy``:
    when to push, as `TrainingArguments.hub_strategy`: ``end`` (the final model only), ``every_save``,
    ``checkpoint`` or ``all_checkpoints``. ``revision``: the branch to push to (None: main). The token is the
    logged-in one (``hf auth login`` or ``HF_TOKEN``); a recipe never holds one.
    """

    repo_id: str
    private: bool = True
    strategy: Literal["end", "every_save", "checkpoint", "all_checkpoints"] = "end"
    revision: str | None = None

    def training_arguments(self) -> dict[str, Any]:
        """The `TrainingArguments` fields that make the Trainer push to this repo."""
        return {"push_to_hub": True, "hub_model_id": self.repo_id, "hub_private_repo": self.private,
                "hub_strategy": self.strategy, "hub_revision": self.revision}


@dataclass
class TrainSection:
    """What trains and how. ``batch_size`` is per device; ``save``: the final output.

    ``save: adapter`` writes what training added to the base LM: the projectors and cue-token rows
    (``adapter.safetensors``, loaded with ``from_adapter``) and, with ``lora``, the LoRA as a PEFT adapter
    folder ``lora/`` (``PeftModel.from_pretrained`` loads it onto the base LM). ``save: full`` writes the whole
    model (LoRA merged into the LM), loaded with ``from_pretrained``; ``save: both`` writes both into the same
    folder. Unset: ``adapter`` with ``lora``, ``full`` without (`resolved_save`).

    ``hub``: upload the output to the Hub (`HubSection`; off when absent). ``report_to``: the experiment
    trackers `TrainingArguments.report_to` names (``[none]`` for none; absent: TensorBoard when installed,
    which stays on this machine). ``trainer_args``: any other `transformers.TrainingArguments` field
    (``fsdp``, ``deepspeed``, ...), except the upload and reporting keys and the keys the fields above set.
    """

    trainable: list[str] = field(default_factory=lambda: ["projectors", "embeddings"])
    lora: LoraSection | None = None
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    tf32: bool = False
    gradient_checkpointing: bool = False
    save_steps: int = 500
    save_total_limit: int | None = None
    logging_steps: int = 10
    seed: int = 42
    save: Literal["full", "adapter", "both"] | None = None
    hub: HubSection | None = None
    report_to: list[str] | None = None
    trainer_args: dict = field(default_factory=dict)

    @property
    def resolved_save(self) -> str:
        """``save``, or its default when unset: ``adapter`` with ``lora`` (merged weights only when asked for),
        else ``full``."""
        if self.save is not None:
            return self.save
        return "adapter" if self.lora is not None else "full"

    @property
    def saves_adapter(self) -> bool:
        """Whether the output holds the adapter (projectors, cue rows and, with ``lora``, ``lora/``)."""
        return self.resolved_save in ("adapter", "both")

    @property
    def saves_full(self) -> bool:
        """Whether the output holds the whole model (``from_pretrained``; LoRA merged into the LM)."""
        return self.resolved_save in ("full", "both")

    @property
    def hands_on_language_model(self) -> bool:
        """Whether a stage with these settings changes the LM and saves the change, for later stages to start
        from: LoRA (merged into a full save, or as the ``lora/`` adapter), or ``llm`` with a full save."""
        return self.lora is not None or ("llm" in self.trainable and self.saves_full)


@dataclass
class StageSection:
    """One stage of a curriculum: the cues its data uses, the stages it starts from, its own overrides."""

    name: str
    cues: list[str]
    init_from: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


@dataclass
class Recipe:
    output_dir: str
    model: ModelSection
    cues: list[CueSection]
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    stages: list[StageSection] = field(default_factory=list)

    def cue(self, name: str) -> CueSection:
        return next(section for section in self.cues if section.name == name)

    def stage_plans(self) -> list["StagePlan"]:
        """Every stage with its own ``data`` and ``train`` merged over the recipe's (one stage without ``stages``)."""
        if not self.stages:
            return [StagePlan(DEFAULT_STAGE, [c.name for c in self.cues], [], self.data, _with_save(self.train),
                              Path(self.output_dir))]
        plans = []
        for index, stage in enumerate(self.stages):
            where = f"stages.{index}"
            data = _build(DataSection, _merge(dataclasses.asdict(self.data), stage.data), f"{where}.data")
            train = _build(TrainSection, _merge(dataclasses.asdict(self.train), stage.train), f"{where}.train")
            plans.append(StagePlan(stage.name, list(stage.cues), list(stage.init_from), data, _with_save(train),
                                   Path(self.output_dir) / stage.name))
        return plans


def _with_save(train: TrainSection) -> TrainSection:
    """``train`` with ``save`` set (a stage's own ``lora`` decides its default, not the recipe's)."""
    return dataclasses.replace(train, save=train.resolved_save)


@dataclass
class StagePlan:
    """A stage ready to run: its cues, its hand-off sources, its data and train settings, its output folder."""

    name: str
    cues: list[str]
    init_from: list[str]
    data: DataSection
    train: TrainSection
    output_dir: Path


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file, apply ``key=value`` overrides, check it and return it typed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    try:
        return recipe_from_dict(raw)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None


def recipe_from_dict(raw: dict) -> Recipe:
    recipe = _build(Recipe, raw, "")
    _check(recipe)
    return recipe


def apply_override(raw: dict, override: str) -> None:
    """Set ``a.b.c=value`` in a raw settings dict read from YAML (a recipe, or a plugin's training config).

    The value is parsed as YAML; missing (or null) mappings on the path are created; list items are addressed
    by index or by their ``name``. Raises `RecipeError` naming the key for a malformed override.
    """
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {override!r} is not key=value: it must look like section.key=value")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"override {key}: the value {text!r} is not valid YAML ({exc})") from None
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise RecipeError(f"override {key}: {'.'.join(parts[:depth])} is a {type(node).__name__}, "
                              "not a section or list")


def _list_index(items: list, part: str, where: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise RecipeError(f"override {where}: index {index} is out of range (the list has {len(items)} items)")
        return index
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if part not in names:
        raise RecipeError(f"override {where}: no item named {part!r} (names: {[n for n in names if n]})")
    return names.index(part)


def _merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "trainer_args":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# -- typed building ------------------------------------------------------------------------------------------

def _build(cls: type, raw: Any, where: str) -> Any:
    """``cls(**raw)``, checking every key and value against ``cls``'s type hints."""
    label = where or "the recipe"
    if not isinstance(raw, dict):
        raise RecipeError(f"{label} must be a mapping, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(f"unknown key {_join(where, key)!r}{hint}; known keys: {sorted(fields)}")
    values = {}
    for name, spec in fields.items():
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], _join(where, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise RecipeError(f"missing required key {_join(where, name)!r}")
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            return _coerce(options[0], value, where)
        errors = []
        for option in options:
            try:
                return _coerce(option, value, where)
            except RecipeError as exc:
                errors.append(str(exc))
        raise RecipeError(errors[0])
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list, got {_describe(value)}")
        return [_coerce(args[0], item, f"{where}.{index}") for index, item in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where} must be a mapping, got {_describe(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RecipeError(f"{where} must be a string, got {_describe(value)}")
        return str(value)
    raise TypeError(f"recipe field {where}: unsupported type {hint!r}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


# -- cross-field checks ----------------------------------------------------------------------------------------

def _check(recipe: Recipe) -> None:
    if recipe.model.base is None and recipe.model.base_config is None:
        raise RecipeError("model needs 'base' (a folder or repo id) or 'base_config' (an inline architecture)")
    if recipe.model.base_config is not None and "model_type" not in recipe.model.base_config:
        raise RecipeError("model.base_config needs a 'model_type' (e.g. llama)")
    if not recipe.cues:
        raise RecipeError("cues: list at least one cue")
    names = [cue.name for cue in recipe.cues]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RecipeError(f"cues: the cues {duplicates} are listed more than once")
    for index, cue in enumerate(recipe.cues):
        if not 0.0 <= cue.dropout < 1.0:
            raise RecipeError(f"cues.{index}.dropout must be in [0, 1), got {cue.dropout}")
    stage_names = [stage.name for stage in recipe.stages]
    if len(set(stage_names)) != len(stage_names):
        raise RecipeError(f"stages: stage names must be unique, got {stage_names}")
    for index, stage in enumerate(recipe.stages):
        unknown = [cue for cue in stage.cues if cue not in names]
        if unknown or not stage.cues:
            raise RecipeError(f"stages.{index}.cues must name some of the recipe's cues {names}, got {stage.cues}")
        earlier = stage_names[:index]
        for source in stage.init_from:
            if source not in earlier:
                raise RecipeError(f"stages.{index}.init_from: {source!r} is not an earlier stage (earlier: {earlier})")
    plans = recipe.stage_plans()
    for plan in plans:
        where = "train" if not recipe.stages else f"stages.{plan.name}.train"
        _check_train(plan.train, where)
        if plan.data.model_max_length <= 0:
            raise RecipeError(f"{where.removesuffix('train')}data.model_max_length must be positive")
    _check_adapters_after_a_trained_lm(plans)
    _check_hub_repos(plans)


def _check_train(train: TrainSection, where: str) -> None:
    unknown = [part for part in train.trainable if part not in TRAINABLE_PARTS]
    if unknown:
        raise RecipeError(f"{where}.trainable: unknown parts {unknown}; choose from {list(TRAINABLE_PARTS)}")
    if train.lora is not None and "llm" in train.trainable:
        raise RecipeError(f"{where}: 'lora' trains adapters on a frozen LM; drop 'llm' from trainable or lora")
    if not train.trainable and train.lora is None:
        raise RecipeError(f"{where}.trainable: nothing would train")
    if "llm" in train.trainable and train.saves_adapter:
        raise RecipeError(f"{where}.save: an adapter ({train.resolved_save!r}) holds projectors, cue rows and LoRA, "
                          "not the LM that 'llm' fine-tunes; use save: full, or LoRA instead of 'llm'")
    for name in ("batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
        if getattr(train, name) <= 0:
            raise RecipeError(f"{where}.{name} must be positive, got {getattr(train, name)}")
    if not 0.0 <= train.warmup_ratio < 1.0:
        raise RecipeError(f"{where}.warmup_ratio is a fraction of the steps, in [0, 1); got {train.warmup_ratio}")
    if train.max_steps <= 0 and train.epochs <= 0:
        raise RecipeError(f"{where}: set epochs > 0 or max_steps > 0")
    for key in train.trainer_args:
        _check_trainer_arg(str(key), f"{where}.trainer_args")
    if train.hub is not None and "/" not in train.hub.repo_id.strip("/"):
        raise RecipeError(f"{where}.hub.repo_id must be 'org/name', got {train.hub.repo_id!r}")


def _check_trainer_arg(key: str, where: str) -> None:
    """`RecipeError` for a trainer_args key that uploads, reports, or repeats a recipe field."""
    field_name = UPLOAD_TRAINER_ARGS.get(key) or next(
        (name for prefix, name in UPLOAD_TRAINER_ARG_PREFIXES.items() if key.startswith(prefix)), None)
    if field_name is not None:
        raise RecipeError(f"{where}.{key}: uploading and reporting are not passed through trainer_args; "
                          f"say it in the recipe with {field_name} (see the recipe documentation)")
    if key in RECIPE_TRAINER_ARGS:
        raise RecipeError(f"{where}.{key}: the recipe sets this from {RECIPE_TRAINER_ARGS[key]}; set that instead")


def _check_adapters_after_a_trained_lm(plans: list[StagePlan]) -> None:
    """A stage that starts its LM from an earlier stage's trained LM cannot save only an adapter: the adapter
    (and its ``lora/``) goes onto the untrained base LM it names, which would silently drop that training."""
    by_name = {plan.name: plan for plan in plans}
    for plan in plans:
        sources = [name for name in plan.init_from if by_name[name].train.hands_on_language_model]
        if sources and plan.train.saves_adapter:
            raise RecipeError(f"stages.{plan.name}.train.save: the stage starts its LM from stage {sources[-1]!r}, "
                              f"which trained it; an adapter ({plan.train.resolved_save!r}) would load onto the "
                              "untrained base LM; use save: full")


def _check_hub_repos(plans: list[StagePlan]) -> None:
    """Two stages pushing to one repo would overwrite each other: each stage names its own."""
    pushed: dict[tuple[str, str | None], str] = {}
    for plan in plans:
        if plan.train.hub is None:
            continue
        target = (plan.train.hub.repo_id, plan.train.hub.revision)
        if target in pushed:
            raise RecipeError(f"stages.{plan.name}.train.hub: stages {pushed[target]!r} and {plan.name!r} would both "
                              f"push to {target[0]}; give each stage its own repo_id or revision")
        pushed[target] = plan.name
