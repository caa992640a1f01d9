"""Loading the three transformers models of the object cue, each with its processor, from a folder or Hub id.

A model folder holds what ``save_pretrained`` writes for the model and for its processor (tokenizer + image
processor), as Hub checkpoints do: ``Salesforce/blip2-opt-2.7b``, ``google/owlv2-base-patch16-ensemble``,
``openai/clip-vit-base-patch16``. Importing this module is cheap (the command's defaults live here):
transformers is imported on first use.
"""

from __future__ import annotations

from typing import Any

from llavidal_core.errors import LlavidalError
from llavidal_core.quiet import quiet_transformers

DEFAULT_TAGGER = "Salesforce/blip2-opt-2.7b"
DEFAULT_DETECTOR = "google/owlv2-base-patch16-ensemble"
DEFAULT_ENCODER = "openai/clip-vit-base-patch16"


class ModelLoadError(LlavidalError):
    """A tagger, detector or crop encoder could not be loaded from the name given."""


def load_model_and_processor(model_class_name: str, name: str, role: str, dtype: Any = None) -> tuple[Any, Any]:
    """``(model.eval(), processor)`` for ``name`` (a folder or Hub id); failures name the ``role`` (--tagger...)."""
    import transformers
    from transformers import AutoProcessor

    model_class = getattr(transformers, model_class_name)
    try:
        with quiet_transformers():
            processor = AutoProcessor.from_pretrained(name)
            model = model_class.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{role} {name!r}: cannot load a {model_class_name} and its processor "
                             f"({' '.join(str(exc).split())[:300]})") from exc
    return model.eval(), processor


