"""Adapter-only checkpoints: what fusion adds to a base LM, without the LM itself.

An adapter folder holds ``config.json`` (the full `LlavidalConfig`, naming the base LM in
``base_model_name_or_path``), ``adapter.safetensors`` (the projectors under ``projectors.*`` and the cue-token
rows of the input embeddings, and of the output embeddings when untied, under ``input_embeddings.rows`` /
``output_embeddings.rows``, with the row ids in the metadata) and the model card. Loading it onto the same
base LM gives the saved model's logits exactly, as long as the LM itself was frozen while training.

When the LM trained through LoRA (its ``language_model`` is a peft `PeftModel`), the folder also holds
``lora/``: a PEFT adapter folder written by peft's own ``save_pretrained`` (``adapter_config.json`` naming the
base LM in ``base_model_name_or_path``, ``adapter_model.safetensors``). ``PeftModel.from_pretrained(base_lm,
"OUTPUT/lora")`` loads it onto the plain base LM (text only: the cue rows are in ``adapter.safetensors``);
`load_adapter` applies it after the cue rows, merged into the LM unless asked not to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import PreTrainedModel

from llavidal_core.errors import LlavidalError
from llavidal_core.hub import write_model_card
from llavidal_core.modeling.configuration_llavidal import LlavidalConfig
from llavidal_core.modeling.modeling_llavidal import grow_token_embeddings, untied_output_weight

ADAPTER_WEIGHTS_NAME = "adapter.safetensors"
ADAPTER_FORMAT = "llavidal-adapter"
LORA_FOLDER = "lora"  # the PEFT adapter folder inside an adapter folder, when the LM trained through LoRA
INPUT_ROWS_KEY = "input_embeddings.rows"
OUTPUT_ROWS_KEY = "output_embeddings.rows"


class AdapterError(LlavidalError):
    """An adapter folder is incomplete, or does not fit the base LM it is loaded onto."""


def adapter_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The projector weights and the cue-token embedding rows of ``model``."""
    token_ids = torch.tensor(model.config.new_token_ids, dtype=torch.long)
    state = {f"projectors.{key}": value for key, value in model.projectors.state_dict().items()}
    input_weight = model.get_input_embeddings().weight
    state[INPUT_ROWS_KEY] = input_weight.detach()[token_ids.to(input_weight.device)]
    output_weight = untied_output_weight(model)
    if output_weight is not None:
        state[OUTPUT_ROWS_KEY] = output_weight.detach()[token_ids.to(output_weight.device)]
    return {key: value.contiguous().cpu() for key, value in state.items()}


def save_adapter(model: Any, save_directory: str | os.PathLike, processor: Any = None) -> Path:
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)
    metadata = {"format": ADAPTER_FORMAT, "token_ids": json.dumps(model.config.new_token_ids)}
    save_file(adapter_state_dict(model), directory / ADAPTER_WEIGHTS_NAME, metadata=metadata)
    if is_peft_model(model.language_model):
        save_lora(model.language_model, directory / LORA_FOLDER, model.config.base_model_name_or_path)
    if processor is not None:
        processor.save_pretrained(directory)
    write_model_card(model.config, directory, adapter_only=True)
    return directory


def is_peft_model(module: Any) -> bool:
    """Whether ``module`` is a peft `PeftModel` (False when peft is not installed)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(module, PeftModel)


def save_lora(peft_model: Any, directory: str | os.PathLike, base_model_name_or_path: str | None = None) -> Path:
    """Write ``peft_model``'s adapters as a PEFT adapter folder with peft's own ``save_pretrained``.

    Only the LoRA weights: never the embedding matrices, which peft would add on its own since training grew
    them by the cue tokens (the cue rows are in ``adapter.safetensors``), so the folder loads onto the plain
    base LM. ``base_model_name_or_path`` (the base LM) is written into ``adapter_config.json``.
    """
    directory = Path(directory)
    configs = peft_model.peft_config
    saved = {name: config.base_model_name_or_path for name, config in configs.items()}
    if base_model_name_or_path:
        for config in configs.values():
            config.base_model_name_or_path = str(base_model_name_or_path)
    try:
        peft_model.save_pretrained(str(directory), save_embedding_layers=False)
    finally:
        for name, value in saved.items():
            configs[name].base_model_name_or_path = value
    return directory


def merge_lora_folder(language_model: PreTrainedModel, lora: str | os.PathLike, merge: bool = True,
                      **hub_kwargs: Any) -> Any:
    """``language_model`` with the PEFT adapter folder (or ``subfolder=`` of a Hub repo) ``lora`` applied
    through ``PeftModel.from_pretrained``: merged into its weights (a plain LM), or as a `PeftModel`."""
    try:
        from peft import PeftModel
    except ImportError:
        raise AdapterError(f"{lora}: a LoRA adapter needs peft: pip install 'llavidal-core[train]'") from None
    peft_model = PeftModel.from_pretrained(language_model, str(lora), **hub_kwargs)
    return peft_model.merge_and_unload() if merge else peft_model


def load_adapter(model_class: type, adapter: str | os.PathLike, base: str | os.PathLike | PreTrainedModel | None = None,
                 merge_lora: bool = True, **base_kwargs: Any) -> Any:
    """Build the fusion model from an adapter folder (or Hub repo) and a base LM (model, path or repo id).

    With a ``lora/`` folder, the LoRA is applied to the LM after the cue rows: merged into its weights
    (``merge_lora=True``), or kept as a peft `PeftModel` in ``model.language_model``.
    """
    from transformers.utils import cached_file

    hub_kwargs = {key: base_kwargs[key] for key in ("cache_dir", "local_files_only", "revision", "token")
                  if key in base_kwargs}
    adapter_config = LlavidalConfig.from_pretrained(adapter, **hub_kwargs)
    weights_file = cached_file(adapter, ADAPTER_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if weights_file is None:
        raise AdapterError(f"{adapter}: no {ADAPTER_WEIGHTS_NAME} (not a llavidal adapter folder)")
    base = base if base is not None else adapter_config.base_model_name_or_path
    if base is None:
        raise AdapterError(f"{adapter}: the adapter names no base LM (base_model_name_or_path); pass base=...")
    if isinstance(base, PreTrainedModel):
        language_model = base
    else:
        from llavidal_core.base_models import load_base_language_model

        language_model = load_base_language_model(base, **base_kwargs)
    with safe_open(weights_file, framework="pt") as reader:
        metadata = reader.metadata() or {}
        if metadata.get("format") != ADAPTER_FORMAT or "token_ids" not in metadata:
            raise AdapterError(f"{weights_file}: not a llavidal adapter (metadata format {metadata.get('format')!r}, "
                               f"token ids {'present' if 'token_ids' in metadata else 'absent'})")
        state = {key: reader.get_tensor(key) for key in reader.keys()}
    token_ids = json.loads(metadata["token_ids"])
    _check_base_fits(adapter, adapter_config, language_model, token_ids)
    grow_token_embeddings(language_model, adapter_config.text_config.vocab_size)
    config = LlavidalConfig(
        text_config=language_model.config,
        cues=adapter_config.cues,
        cue_token_ids=adapter_config.cue_token_ids,
        use_start_end=adapter_config.use_start_end,
        base_model_name_or_path=adapter_config.base_model_name_or_path,
        cue_encoders=adapter_config.cue_encoders,
        dtype=language_model.dtype,
    )
    model = model_class(config, language_model=language_model)
    _check_adapter_complete(adapter, model, state, token_ids)
    projector_state = {key.removeprefix("projectors."): value for key, value in state.items()
                       if key.startswith("projectors.")}
    model.projectors.load_state_dict(projector_state, strict=True)
    _write_rows(model.get_input_embeddings().weight, token_ids, state[INPUT_ROWS_KEY])
    output_weight = untied_output_weight(model)
    if OUTPUT_ROWS_KEY in state and output_weight is not None:
        _write_rows(output_weight, token_ids, state[OUTPUT_ROWS_KEY])
    model.check_added_weights_finite(adapter)
    model = model.to(device=language_model.device, dtype=language_model.dtype)
    lora_config = cached_file(adapter, "adapter_config.json", subfolder=LORA_FOLDER,
                              _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if lora_config is not None:
        model.language_model = merge_lora_folder(model.language_model, adapter, merge=merge_lora,
                                                 subfolder=LORA_FOLDER, **hub_kwargs)
    return model


def _check_adapter_complete(adapter: Any, model: Any, state: dict[str, torch.Tensor], token_ids: list[int]) -> None:
    """Every tensor the model needs from the adapter is there, with its shape; nothing is left at random."""
    expected = {f"projectors.{key}": tuple(value.shape) for key, value in model.projectors.state_dict().items()}
    hidden = model.config.text_config.hidden_size
    expected[INPUT_ROWS_KEY] = (len(token_ids), hidden)
    if untied_output_weight(model) is not None:  # untied output embeddings have cue-token rows of their own
        expected[OUTPUT_ROWS_KEY] = (len(token_ids), hidden)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise AdapterError(f"{adapter}: {ADAPTER_WEIGHTS_NAME} lacks {missing}, which would start random")
    wrong = {key: (tuple(state[key].shape), shape) for key, shape in expected.items()
             if tuple(state[key].shape) != shape}
    if wrong:
        found = "; ".join(f"{key} has shape {got}, expected {shape}" for key, (got, shape) in wrong.items())
        raise AdapterError(f"{adapter}: {ADAPTER_WEIGHTS_NAME} does not fit the model: {found}")


def _check_base_fits(adapter: Any, config: LlavidalConfig, language_model: PreTrainedModel, token_ids: list[int]) -> None:
    hidden = language_model.config.get_text_config().hidden_size
    if hidden != config.text_config.hidden_size:
        raise AdapterError(f"{adapter}: the adapter is for hidden size {config.text_config.hidden_size}, "
                           f"the base LM has {hidden}")
    base_rows = language_model.get_input_embeddings().weight.shape[0]
    if base_rows > config.text_config.vocab_size:
        raise AdapterError(f"{adapter}: the base LM has {base_rows} embedding rows, more than the adapter's "
                           f"vocabulary of {config.text_config.vocab_size}; is it the right base?")
    if token_ids and min(token_ids) < base_rows and base_rows != config.text_config.vocab_size:
        raise AdapterError(f"{adapter}: cue token ids start at {min(token_ids)} but the base LM already has "
                           f"{base_rows} rows")


@torch.no_grad()
def _write_rows(weight: torch.Tensor, token_ids: list[int], rows: torch.Tensor) -> None:
    index = torch.tensor(token_ids, dtype=torch.long, device=weight.device)
    weight[index] = rows.to(device=weight.device, dtype=weight.dtype)
