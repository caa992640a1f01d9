"""From a recipe to a fusion model: cue specs, base LM + tokenizer, what trains, and the MMPro hand-off.

Every stage of a recipe builds the same model: the base LM with ALL the recipe's cues (the same token ids
and projectors in every stage); a stage's data only uses its own cues. `copy_stage_weights` starts a stage
from earlier ones: for each earlier stage it copies the projector weights and cue-token embedding rows of the
cues that stage trained, the later stages winning, which replaces the original's merge script. An earlier
stage that trained the LM itself (``llm`` saved ``full``, or LoRA saved either way) also hands on its LM
(`copy_language_model_weights`: the full save's weights, or its ``lora/`` adapter merged into the LM):
otherwise a curriculum that fine-tunes the LM would restart every stage from the untrained base LM.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llavidal_core.cue_tokens import cue_token_ids_for_appended_rows
from llavidal_core.cues import CueSpec
from llavidal_core.errors import LlavidalError
from llavidal_core.plugins import get_plugin_manager
from llavidal_core.seed_cues import LLAVIDAL_CUES
from llavidal_core.training.recipe import CueSection, ModelSection, RecipeError, TrainSection

logger = logging.getLogger(__name__)
SEED_CUES = {spec.name: spec for spec in LLAVIDAL_CUES}


def resolve_cue_spec(section: CueSection, index: int) -> CueSpec:
    """The spec of a recipe cue: an installed plugin's, else the seed's, with ``spec`` fields applied."""
    registered = get_plugin_manager().cues()
    base = registered[section.name].spec if section.name in registered else SEED_CUES.get(section.name)
    overrides = dict(section.spec)
    if section.projector is not None:
        overrides["projector"] = section.projector
    if section.standardize is not None:
        overrides["standardize"] = section.standardize
    where = f"cues.{index} ({section.name})"
    try:
        if base is None:
            return CueSpec.from_dict({"name": section.name, **overrides})
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(CueSpec)})
        if unknown:
            raise ValueError(f"unknown spec fields {unknown}")
        if "num_tokens" in overrides and "tokens_per_item" not in overrides:
            overrides["tokens_per_item"] = None
        if "tokens_per_item" in overrides and "num_tokens" not in overrides:
            overrides["num_tokens"] = None
        return dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as exc:
        known = sorted(set(registered) | set(SEED_CUES))
        hint = "" if base is not None else f" (no installed plugin or seed cue is called {section.name!r}; known: {known})"
        raise RecipeError(f"{where}.spec: {exc}{hint}") from None


def resolve_cue_specs(sections: Sequence[CueSection]) -> tuple[CueSpec, ...]:
    specs = tuple(resolve_cue_spec(section, index) for index, section in enumerate(sections))
    projectors = get_plugin_manager().projectors()
    for index, spec in enumerate(specs):
        if spec.projector not in projectors:
            raise RecipeError(f"cues.{index}.projector: no projector {spec.projector!r} is registered "
                              f"(known: {sorted(projectors)})")
    return specs


def feature_provenance(sections: Sequence[CueSection]) -> dict[str, tuple[Any, dict | None]]:
    """``{cue: (EncoderRecord, stored spec dict)}`` for each recipe cue whose feature store records how its
    features were made (`llavidal_core.encoder_records.records_in_store`), so the trained model can make them
    again. A cue with legacy ``.pkl`` features, or features that say nothing, is left out (and logged).

    Raises `RecipeError` when the files of one cue disagree (features made by different encoders or settings).
    """
    from llavidal_core.encoder_records import records_in_store
    from llavidal_core.features import iter_feature_files

    found = {}
    for section in sections:
        if section.features is None or not Path(section.features).is_dir() \
                or next(iter_feature_files(section.features), None) is None:
            continue
        try:
            record, stored_spec = records_in_store(section.features, section.name)
        except LlavidalError as exc:
            raise RecipeError(f"cues.{section.name}.features: {exc}") from None
        if record is None:
            logger.info("cue %r: the features in %s do not record their encoder; the model will need "
                        "precomputed features or an encoder given at inference", section.name, section.features)
            continue
        found[section.name] = (record, stored_spec)
    return found


def describe_cues_by_their_features(specs: Sequence[CueSpec], provenance: dict[str, tuple[Any, dict | None]]
                                    ) -> tuple[CueSpec, ...]:
    """``specs`` with each ``description`` replaced by the one the features' encoder wrote (``<cue>.spec`` in
    the feature store), so a model's config says how its features were really made, not a default text."""
    described = []
    for spec in specs:
        stored = provenance.get(spec.name, (None, None))[1] or {}
        description = stored.get("description")
        described.append(dataclasses.replace(spec, description=description) if description else spec)
    return tuple(described)


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


# -- building -----------------------------------------------------------------------------------------------------

def load_tokenizer(model: ModelSection):
    from transformers import AutoTokenizer

    source = model.tokenizer or model.base
    if source is None:
        raise RecipeError("model: set 'tokenizer' or 'base' (where the tokenizer files are)")
    return AutoTokenizer.from_pretrained(source, padding_side="right")


def build_model(model: ModelSection, cues: Sequence[CueSpec], processor: Any):
    """The base LM loaded from ``model.base`` (or made from ``base_config``) and wrapped with ``cues``."""
    from transformers import AutoModelForCausalLM

    from llavidal_core.base_models import load_base_language_model
    from llavidal_core.modeling import LlavidalForConditionalGeneration

    dtype = torch_dtype(model.dtype)
    kwargs = {"attn_implementation": model.attn_implementation} if model.attn_implementation else {}
    if model.base is not None:
        language_model = load_base_language_model(model.base, dtype=dtype, **kwargs)
    else:
        language_model = AutoModelForCausalLM.from_config(base_config(model), dtype=dtype, **kwargs)
    fused = LlavidalForConditionalGeneration.from_language_model(
        language_model, cues, processor.cue_token_ids, use_start_end=processor.use_start_end,
        base_model_name_or_path=model.base,
    )
    if model.base is not None:
        start_video_projector_from_llava(fused, model.base)
    return fused


def start_video_projector_from_llava(fused: Any, base: str) -> bool:
    """Copy a LLaVA-style base's ``model.mm_projector`` into the ``video`` cue's projector, as the original's
    training starts from it (`llavidal_core.base_models`); only when that projector is one ``nn.Linear`` of
    the same shape. Returns whether it was copied."""
    import torch

    from llavidal_core.base_models import llava_image_projector

    state = llava_image_projector(base)
    projector = fused.projectors["video"] if "video" in fused.projectors else None
    if state is None or not isinstance(projector, torch.nn.Linear):
        return False
    if tuple(state["weight"].shape) != tuple(projector.weight.shape):
        logger.info("%s: LLaVA's mm_projector is %s, the video projector %s: the video projector starts fresh",
                    base, tuple(state["weight"].shape), tuple(projector.weight.shape))
        return False
    with torch.no_grad():
        projector.weight.copy_(state["weight"])
        projector.bias.copy_(state["bias"])
    logger.info("%s: the video projector starts from LLaVA's mm_projector, as in the original", base)
    return True


def base_config(model: ModelSection):
    from transformers import AutoConfig

    values = dict(model.base_config)
    model_type = values.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **values)
    except (ValueError, KeyError) as exc:
        raise RecipeError(f"model.base_config: {exc}") from None


def build_meta_model(model: ModelSection, cues: Sequence[CueSpec], use_start_end: bool):
    """The fusion model on the ``meta`` device, from ``base_config``: shapes only, no weights, no downloads."""
    import torch
    from transformers import AutoModelForCausalLM

    from llavidal_core.modeling import LlavidalForConditionalGeneration

    if model.base_config is None:
        raise RecipeError("model.base_config is needed for --dry-run (the base LM's architecture, inline)")
    config = base_config(model)
    token_ids = cue_token_ids_for_appended_rows(cues, use_start_end, config.vocab_size)
    with torch.device("meta"):
        language_model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(model.dtype))
        fused = LlavidalForConditionalGeneration.from_language_model(
            language_model, cues, token_ids, use_start_end=use_start_end, base_model_name_or_path=model.base)
    return fused


# -- what trains ----------------------------------------------------------------------------------------------------

def apply_trainable(model: Any, train: TrainSection, cues: Sequence[str] | None = None):
    """Freeze all but ``train.trainable``; with ``train.lora``, wrap the LM's linear layers in LoRA adapters.

    With ``cues``, only those cues' projectors train (a stage's other cues see no data).
    """
    model.set_trainable(train.trainable)
    if cues is not None:
        for name, projector in model.projectors.items():
            if name not in cues:
                projector.requires_grad_(False)
    if train.lora is not None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise LlavidalError("train.lora needs peft: pip install 'llavidal-core[train]'") from None
        config = LoraConfig(r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout,
                            target_modules=list(train.lora.target_modules), bias="none")
        model.language_model = get_peft_model(model.language_model, config)
        if "embeddings" in train.trainable:  # peft froze every base weight; the cue rows train on
            from llavidal_core.modeling.modeling_llavidal import embedding_weights

            for weight in embedding_weights(model):
                weight.requires_grad_(True)
    return model


def merge_lora(model: Any) -> Any:
    """Fold LoRA adapters into the LM's weights, so the saved model needs no peft to load."""
    from peft import PeftModel

    if isinstance(model.language_model, PeftModel):
        model.language_model = model.language_model.merge_and_unload()
    return model


@dataclass(frozen=True)
class ParameterCounts:
    total: int
    trainable: int
    by_part: dict

    def lines(self) -> list[str]:
        lines = [f"parameters: {self.total:,} total, {self.trainable:,} trainable"]
        lines += [f"  {part}: {count:,}" for part, count in self.by_part.items()]
        return lines


def count_parameters(model: Any) -> ParameterCounts:
    """Total and trainable parameters; embeddings trained through the row mask count only their cue rows."""
    from llavidal_core.modeling.modeling_llavidal import embedding_weights

    by_part = {}
    rows = len(model.config.new_token_ids)
    embedding_ids = {id(weight) for weight in embedding_weights(model)}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = "projectors" if name.startswith("projectors.") else "lora" if "lora_" in name else "llm"
        count = parameter.numel()
        if id(parameter) in embedding_ids and "llm" not in model.trainable_parts:
            part, count = "embeddings (cue rows)", rows * parameter.shape[1]
        by_part[part] = by_part.get(part, 0) + count
    total = sum(parameter.numel() for parameter in model.parameters())
    return ParameterCounts(total, sum(by_part.values()), by_part)


# -- the MMPro hand-off ------------------------------------------------------------------------------------------------

def copy_stage_weights(model: Any, stage_dir: Path, cues: Sequence[str]) -> None:
    """Copy, from a finished stage's output, the projectors and cue-token embedding rows of ``cues``."""
    import torch

    from llavidal_core.modeling.adapter import ADAPTER_WEIGHTS_NAME, INPUT_ROWS_KEY, OUTPUT_ROWS_KEY
    from llavidal_core.modeling.modeling_llavidal import untied_output_weight

    stage_dir = Path(stage_dir)
    wanted_rows = sorted({i for cue in cues for i in model.config.cue_token_ids[cue].values() if i is not None})
    input_weight = model.get_input_embeddings().weight
    output_weight = untied_output_weight(model)
    with torch.no_grad():
        if (stage_dir / ADAPTER_WEIGHTS_NAME).is_file():
            from safetensors import safe_open

            with safe_open(stage_dir / ADAPTER_WEIGHTS_NAME, framework="pt") as reader:
                saved_ids = json.loads(reader.metadata()["token_ids"])
                position = {token_id: row for row, token_id in enumerate(saved_ids)}
                _copy_projectors(model, cues, reader.get_tensor, stage_dir)
                for key, weight in ((INPUT_ROWS_KEY, input_weight), (OUTPUT_ROWS_KEY, output_weight)):
                    if weight is not None and key in reader.keys():
                        saved = reader.get_tensor(key)
                        for token_id in wanted_rows:
                            weight[token_id] = saved[position[token_id]].to(weight.dtype)
        else:
            tensors = _stage_checkpoint(stage_dir).get
            _copy_projectors(model, cues, tensors, stage_dir)
            names = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
            for weight in (input_weight, output_weight):
                if weight is not None:
                    saved = tensors(names[id(weight)])
                    weight[wanted_rows] = saved[wanted_rows].to(device=weight.device, dtype=weight.dtype)


def stage_trained_language_model(train: TrainSection) -> bool:
    """Whether a stage with these settings changed the LM and saved the change: ``llm`` with a full save, or
    LoRA (merged into a full save, or as the ``lora/`` adapter)."""
    return train.hands_on_language_model


def copy_language_model_weights(model: Any, stage_dir: Path) -> None:
    """Start the LM from a stage's: every LM weight (``language_model.*``, all embedding rows included) from
    its full save, or, from an adapter-only save, its ``lora/`` merged into the LM."""
    import torch

    from llavidal_core.modeling.adapter import LORA_FOLDER, merge_lora_folder

    stage_dir = Path(stage_dir)
    if not _has_full_weights(stage_dir) and (stage_dir / LORA_FOLDER / "adapter_config.json").is_file():
        model.language_model = merge_lora_folder(model.language_model, stage_dir / LORA_FOLDER)
        return
    tensors = _stage_checkpoint(stage_dir).get
    with torch.no_grad():
        for name, parameter in model.named_parameters(remove_duplicate=True):
            if not name.startswith("language_model."):
                continue
            try:
                saved = tensors(name)
            except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type
                raise LlavidalError(f"{stage_dir}: no {name} to start the LM from ({exc})") from None
            if saved.shape != parameter.shape:
                raise LlavidalError(f"{stage_dir}: {name} has shape {tuple(saved.shape)}, the model's is "
                                    f"{tuple(parameter.shape)}")
            parameter.copy_(saved.to(device=parameter.device, dtype=parameter.dtype))


def _copy_projectors(model: Any, cues: Sequence[str], get_tensor, stage_dir: Path) -> None:
    """Each cue's projector weights and buffers (a standardised cue's fitted statistics) from a stage."""
    for cue in cues:
        for name, tensor in model.projectors[cue].state_dict(keep_vars=True).items():
            key = f"projectors.{cue}.{name}"
            try:
                saved = get_tensor(key)
            except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type
                raise LlavidalError(f"{stage_dir}: no {key} to start from ({exc})") from None
            tensor.copy_(saved.to(device=tensor.device, dtype=tensor.dtype))


def _stage_checkpoint(stage_dir: Path):
    """A `CheckpointReader` over a stage's full save (``save_pretrained``: one weights file or an index of shards).

    Raises `LlavidalError` when the folder holds no model weights (nor, as the caller checked first, an adapter).
    """
    from llavidal_core.conversion import checkpoints

    if not _has_full_weights(stage_dir):
        raise LlavidalError(f"{stage_dir}: neither a saved model nor an adapter to start from")
    return checkpoints.CheckpointReader(stage_dir)


def _has_full_weights(stage_dir: Path) -> bool:
    from llavidal_core.conversion import checkpoints

    weight_files = (checkpoints.SAFETENSORS_INDEX, checkpoints.SAFETENSORS_SINGLE, checkpoints.BIN_INDEX,
                    checkpoints.BIN_SINGLE)
    return any((Path(stage_dir) / name).is_file() for name in weight_files)
