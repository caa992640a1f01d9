"""Loading a base causal LM, including the LLaVA-style folders the original LLAVIDAL starts from.

LLaVA, Video-ChatGPT and LLAVIDAL save a LLaMA under a model type of their own: ``llava`` (LLaVA's
``LlavaLlamaForCausalLM``, as in ``mmaaz60/LLaVA-7B-Lightening-v1-1``, LLAVIDAL's base), ``VideoChatGPT`` and
``LLAVIDAL``. Their ``config.json`` is a LLaMA config plus ``mm_*`` keys, their vocabulary holds LLaVA's three
image tokens (32003 rows), their checkpoint holds LLaVA's image projector ``model.mm_projector.*`` beside the
LLaMA weights, and their tokenizer is often only a SentencePiece ``tokenizer.model``. transformers knows
``llava`` as its own, different, vision-language class, so ``AutoModelForCausalLM`` refuses such a folder.

`load_base_language_model` reads those configs as the LLaMA they wrap: the ``mm_*`` keys are dropped and the
LLaMA weights load as a ``LlamaForCausalLM`` (``.bin`` shards with ``weights_only=True``, as transformers
loads them). LLaVA's ``model.mm_projector.*`` (CLIP-L/14 features to the LM, trained on images) is not part
of the LM; it is handled as the original handles it: training starts the video cue's projector from it
(`llava_image_projector`; the original builds ``mm_projector`` from the base's config and loads it with the
base's weights), while inference and ``llavidal convert legacy`` replace it with the projection file's video
projector (the original's ``initialize_model`` builds a fresh one and loads that file). Every other folder or
Hub id goes to ``AutoModelForCausalLM`` unchanged. SentencePiece-only tokenizers load through
``AutoTokenizer`` (llavidal-core depends on ``sentencepiece`` and ``protobuf`` for that).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError

logger = logging.getLogger(__name__)

# model types under which LLaVA-family code saved a plain LLaMA with mm_* additions
LLAVA_STYLE_MODEL_TYPES = frozenset({"llava", "llava_llama", "VideoChatGPT", "LLAVIDAL"})
LLAVA_ONLY_CONFIG_KEYS = frozenset({"sep_image_conv_front", "sep_video_conv_front", "tune_mm_mlp_adapter",
                                    "freeze_mm_mlp_adapter", "use_mm_proj", "use_modality_string_prefix"})
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "revision", "token", "subfolder")


def read_config_dict(source: str | os.PathLike, **hub_kwargs: Any) -> dict[str, Any] | None:
    """``config.json`` of a folder or Hub repo as a dict, or None when it has none."""
    from transformers.utils import cached_file

    path = cached_file(str(source), "config.json", _raise_exceptions_for_missing_entries=False,
                       **{key: value for key, value in hub_kwargs.items() if key in HUB_KWARGS})
    if path is None:
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_llava_style_config(config: dict[str, Any]) -> bool:
    """A LLaMA saved by LLaVA-family code (not transformers' own LLaVA, which has a ``text_config``)."""
    return (config.get("model_type") in LLAVA_STYLE_MODEL_TYPES and "text_config" not in config
            and "hidden_size" in config and "num_hidden_layers" in config)


def llama_config_from_llava(config: dict[str, Any]):
    """The `LlamaConfig` inside a LLaVA-style config dict (``mm_*`` and LLaVA-only keys dropped)."""
    from transformers import LlamaConfig

    values = {key: value for key, value in config.items()
              if not key.startswith("mm_") and key not in LLAVA_ONLY_CONFIG_KEYS
              and key not in ("model_type", "architectures", "_name_or_path", "transformers_version")}
    llama = LlamaConfig(**values)
    llama.architectures = ["LlamaForCausalLM"]
    return llama


def load_base_language_model(source: str | os.PathLike, **kwargs: Any):
    """The causal LM at ``source`` (folder or Hub id); LLaVA-style folders load as their LLaMA.

    ``kwargs`` go to ``from_pretrained`` (``dtype``, ``attn_implementation``, Hub options).
    """
    from transformers import AutoModelForCausalLM

    config = read_config_dict(source, **kwargs)
    if config is None or not is_llava_style_config(config):
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    from transformers import LlamaForCausalLM

    logger.info("%s: a %s checkpoint (%s); loading the LLaMA it wraps, without its mm_* parts", source,
                config["model_type"], ", ".join(config.get("architectures") or ["no architectures"]))
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # its report would call the expected mm_projector news
    try:
        model, info = LlamaForCausalLM.from_pretrained(source, config=llama_config_from_llava(config),
                                                       output_loading_info=True, **kwargs)
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise LlavidalError(f"{source}: the checkpoint lacks {len(missing)} LLaMA weights ({', '.join(missing[:4])}"
                            f"{', ...' if len(missing) > 4 else ''}); they would start random")
    unexpected = sorted(key for key in info.get("unexpected_keys") or [] if ".mm_projector" not in key)
    if unexpected:
        logger.warning("%s: %d tensors are neither LLaMA weights nor LLaVA's mm_projector and were not loaded: %s",
                       source, len(unexpected), ", ".join(unexpected[:4]))
    return model


LLAVA_PROJECTOR_KEYS = ("model.mm_projector.weight", "model.mm_projector.bias")


def llava_image_projector(source: str | os.PathLike, **hub_kwargs: Any) -> dict[str, Any] | None:
    """``{"weight", "bias"}`` of LLaVA's ``model.mm_projector`` in a LLaVA-style base, else None.

    Read from the folder the base's weights were loaded from (a local folder or its Hub cache snapshot).
    """
    from transformers.utils import cached_file

    from llavidal_core.conversion.checkpoints import CheckpointReader

    config = read_config_dict(source, **hub_kwargs)
    if config is None or not is_llava_style_config(config):
        return None
    config_file = cached_file(str(source), "config.json",
                              **{key: value for key, value in hub_kwargs.items() if key in HUB_KWARGS})
    reader = CheckpointReader(Path(config_file).parent)
    if not all(key in reader.weight_map for key in LLAVA_PROJECTOR_KEYS):
        return None
    return {key.rsplit(".", 1)[1]: reader.get(key) for key in LLAVA_PROJECTOR_KEYS}
