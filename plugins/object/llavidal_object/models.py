"""Loading the three transformers models of the object cue, each with its processor, from a folder or Hub id.

A model folder holds what ``save_pretrained`` writes for the model and for its processor (tokenizer + image
processor), as Hub checkpoints do: ``Salesforce/blip2-opt-2.7b``, ``google/owlv2-base-patch16-ensemble``,
``openai/clip-vit-base-patch16``. Importing this module is cheap (the command's defaults live here):
transformers is imported on first use.

A model loads whole or not at all: weights the folder lacks (which transformers would initialise at random)
or of the wrong shape are a `ModelLoadError` naming the folder and the weights, as is a folder that holds
another kind of model. The crop encoder (`load_crop_encoder`) takes a full CLIP model or its vision tower
with the projection, at any projection size.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from llavidal_core.errors import LlavidalError
from llavidal_core.quiet import quiet_transformers

DEFAULT_TAGGER = "Salesforce/blip2-opt-2.7b"
DEFAULT_DETECTOR = "google/owlv2-base-patch16-ensemble"
DEFAULT_ENCODER = "openai/clip-vit-base-patch16"


class ModelLoadError(LlavidalError):
    """A tagger, detector or crop encoder could not be loaded from the name given."""


NAMES_SHOWN = 5


def load_model_and_processor(model_class_name: str, name: str, role: str, dtype: Any = None) -> tuple[Any, Any]:
    """``(model.eval(), processor)`` for ``name`` (a folder or Hub id) in ``dtype`` (None: as saved).

    Raises `ModelLoadError` naming the ``role`` (``--tagger``, ``--detector``) and ``name`` when the folder
    holds another kind of model, lacks weights of the model or holds them in other shapes, or has no processor.
    """
    import transformers
    from transformers import AutoProcessor

    model_class = getattr(transformers, model_class_name)
    config = _read_config(name, role)
    expected = model_class.config_class.model_type
    if config.model_type != expected:
        raise ModelLoadError(f"{role} {name!r}: holds a {config.model_type!r} model, not the {expected!r} model "
                             f"a {model_class_name} is")
    with _loading(role, name, model_class_name):
        processor = AutoProcessor.from_pretrained(name)
        model, info = model_class.from_pretrained(name, dtype=dtype, output_loading_info=True)
    check_all_weights_loaded(info, role, name)
    return model.eval(), processor


def load_crop_encoder(name: str, dtype: Any = None, role: str = "--encoder") -> tuple[Any, Any]:
    """``(CLIPVisionModelWithProjection.eval(), image processor)`` for a CLIP folder or Hub id.

    ``name`` may hold a full `CLIPModel` (its vision tower and ``visual_projection`` are taken, the
    projection size being the model's own ``projection_dim`` whatever its ``vision_config`` says) or a
    `CLIPVisionModelWithProjection`; the features are ``(N, projection_dim)``. Raises `ModelLoadError` naming
    ``name`` for a bare `CLIPVisionModel` (no projection: the object features are CLIP's projected image
    embeddings), a model that is not CLIP, missing or mis-shaped weights, or no image processor.
    """
    from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

    vision_config = clip_vision_config(_read_config(name, role), name, role)
    with _loading(role, name, "CLIPVisionModelWithProjection"):
        image_processor = AutoImageProcessor.from_pretrained(name)
        model, info = CLIPVisionModelWithProjection.from_pretrained(name, config=vision_config, dtype=dtype,
                                                                    output_loading_info=True)
    if "visual_projection.weight" in info["missing_keys"]:
        raise ModelLoadError(f"{role} {name!r}: a CLIP vision tower without its projection (a CLIPVisionModel); "
                             "the object features are CLIP's projected image embeddings: give the full CLIP model "
                             f"(such as {DEFAULT_ENCODER}) or a CLIPVisionModelWithProjection")
    check_all_weights_loaded(info, role, name)
    return model.eval(), image_processor


def clip_vision_config(config: Any, name: str, role: str = "--encoder") -> Any:
    """The `CLIPVisionConfig` to load ``name``'s vision tower with: a full CLIP's ``projection_dim`` wins."""
    if config.model_type == "clip":
        vision_config = copy.deepcopy(config.vision_config)
        vision_config.projection_dim = config.projection_dim
        return vision_config
    if config.model_type == "clip_vision_model":
        return config
    raise ModelLoadError(f"{role} {name!r}: holds a {config.model_type!r} model, not CLIP; give a CLIP model "
                         f"(such as {DEFAULT_ENCODER}) or a CLIPVisionModelWithProjection")


def check_all_weights_loaded(info: dict[str, Any], role: str, name: str) -> None:
    """`ModelLoadError` if ``from_pretrained`` left weights at random (missing) or found them mis-shaped."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(key[0]) for key in info.get("mismatched_keys") or ())
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing: {_names(missing)}")
    if mismatched:
        problems.append(f"{len(mismatched)} weight(s) of another shape: {_names(mismatched)}")
    if problems:
        raise ModelLoadError(f"{role} {name!r}: not a complete checkpoint of this model ({'; '.join(problems)})")


def _read_config(name: str, role: str) -> Any:
    from transformers import AutoConfig

    with _loading(role, name, "model config"):
        return AutoConfig.from_pretrained(name)


@contextlib.contextmanager
def _loading(role: str, name: str, what: str) -> Iterator[None]:
    """Transformers kept quiet; any failure inside becomes a `ModelLoadError` naming the role and ``name``."""
    try:
        with quiet_transformers():
            yield
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a user's folder makes transformers raise
        raise ModelLoadError(f"{role} {name!r}: cannot load a {what} ({' '.join(str(exc).split())[:300]})") from exc


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


