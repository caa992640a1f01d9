"""The fusion model, registered with transformers' Auto classes under model_type ``"llavidal"``.

After ``import llavidal_core.modeling`` (or ``llavidal_core.processing``, or loading a `LlavidalPipeline`),
``AutoConfig``, ``AutoModelForCausalLM``, ``AutoModelForImageTextToText`` (where transformers puts its own
LLaVA-NeXT-Video, so tools that load a multimodal model by that class load ours) and ``AutoProcessor`` load
saved llavidal models by path or repo id. ``import llavidal_core`` alone stays free of torch and transformers,
so it registers nothing.
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

from llavidal_core.modeling.configuration_llavidal import LlavidalConfig
from llavidal_core.modeling.modeling_llavidal import (
    TRAINABLE_PARTS,
    LlavidalForConditionalGeneration,
    LlavidalPreTrainedModel,
)
from llavidal_core.processing import LlavidalProcessor

AutoConfig.register("llavidal", LlavidalConfig, exist_ok=True)
AutoModelForCausalLM.register(LlavidalConfig, LlavidalForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(LlavidalConfig, LlavidalForConditionalGeneration, exist_ok=True)
AutoProcessor.register(LlavidalConfig, LlavidalProcessor, exist_ok=True)

__all__ = ["LlavidalConfig", "LlavidalForConditionalGeneration", "LlavidalPreTrainedModel", "LlavidalProcessor",
           "TRAINABLE_PARTS"]
