"""CLIP vision towers cut at the feature layer: pixel values ``(B, 3, S, S)`` → patch tokens ``(B, P, D)``.

The feature layer follows transformers' ``hidden_states`` numbering: ``0`` is the embedding output (after
the pre-norm), ``k`` the output of block ``k``, negative values count from the end (``-2``, the default and
the original's choice, is the output of the second-to-last block). Blocks above it are dropped when the
tower is built, so they are neither loaded nor computed; the CLS token is dropped from the output.

Two sources: transformers' ``CLIPVisionModel`` (any local folder or Hub id holding a CLIP or CLIP-vision
checkpoint) and open_clip (``open_clip:<model name>`` plus a pretrained tag or checkpoint file). A tower
describes its structure as a JSON-able dict (`describe`), from which `build_vision_tower` rebuilds it with
random weights, for ``save_pretrained`` / ``from_pretrained`` round trips.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llavidal_core.quiet import quiet_transformers
from llavidal_video.preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

OPEN_CLIP_PREFIX = "open_clip:"


def resolve_layer(layer: int, num_layers: int) -> int:
    """How many blocks to run for ``hidden_states[layer]`` of a ``num_layers``-block tower."""
    blocks = layer if layer >= 0 else num_layers + 1 + layer
    if not 0 <= blocks <= num_layers:
        raise ValueError(f"feature layer {layer} does not exist in a tower of {num_layers} blocks "
                         f"(valid: {-num_layers - 1} .. {num_layers})")
    return blocks


class VisionTower(nn.Module):
    """Base class: subclasses set ``image_size``, ``num_patches``, ``hidden_size``, ``image_mean``/``std``."""

    image_size: int
    num_patches: int
    hidden_size: int
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


class TransformersClipTower(VisionTower):
    """A transformers ``CLIPVisionModel`` holding only the blocks up to the feature layer."""

    def __init__(self, model, *, source_layers: int, layer: int,
                 image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD) -> None:
        super().__init__()
        model.post_layernorm = nn.Identity()  # acts on the CLS token of the last block only: never used here
        self.model = model
        self.source_layers = source_layers
        self.layer = layer
        config = model.config
        self.image_size = config.image_size
        self.num_patches = (config.image_size // config.patch_size) ** 2
        self.hidden_size = config.hidden_size
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)

    @classmethod
    def from_pretrained(cls, name: str, layer: int = -2, dtype: torch.dtype | None = None) -> "TransformersClipTower":
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

        with quiet_transformers():
            config = CLIPVisionConfig.from_pretrained(name)
            blocks = resolve_layer(layer, config.num_hidden_layers)
            model = CLIPVisionModel.from_pretrained(name, num_hidden_layers=blocks, dtype=dtype or torch.float32)
            try:
                processor = CLIPImageProcessorPil.from_pretrained(name)
                mean, std = processor.image_mean, processor.image_std
            except (OSError, ValueError):
                mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        return cls(model.eval(), source_layers=config.num_hidden_layers, layer=layer, image_mean=mean, image_std=std)

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "TransformersClipTower":
        from transformers import CLIPVisionConfig, CLIPVisionModel

        config = CLIPVisionConfig.from_dict(dict(description["config"]))
        with quiet_transformers():
            model = CLIPVisionModel(config)
        return cls(model.eval(), source_layers=description["source_layers"], layer=description["layer"],
                   image_mean=description["image_mean"], image_std=description["image_std"])

    def describe(self) -> dict[str, Any]:
        config = self.model.config.to_dict()
        for key in ("dtype", "torch_dtype", "transformers_version", "_name_or_path", "architectures"):
            config.pop(key, None)
        return {"library": "transformers", "config": config, "source_layers": self.source_layers,
                "layer": self.layer, "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        model = self.model
        hidden = model.pre_layrnorm(model.embeddings(pixel_values))
        hidden = model.encoder(inputs_embeds=hidden).last_hidden_state
        return hidden[:, 1:]


class OpenClipTower(VisionTower):
    """The image tower of an open_clip ``VisionTransformer`` (class token, square grid), cut at the layer."""

    def __init__(self, visual: nn.Module, *, model_name: str, source_layers: int, layer: int,
                 image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD) -> None:
        super().__init__()
        blocks = resolve_layer(layer, source_layers)
        if getattr(visual, "class_embedding", None) is None or not hasattr(visual, "_embeds"):
            raise ValueError(f"open_clip model {model_name!r}: only ViT towers with a class token are supported")
        visual.transformer.resblocks = visual.transformer.resblocks[:blocks]
        visual.ln_post = nn.Identity()
        visual.proj = None
        self.visual = visual
        self.model_name = model_name
        self.source_layers = source_layers
        self.layer = layer
        size = visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        grid = visual.grid_size
        self.num_patches = grid[0] * grid[1]
        self.hidden_size = visual.conv1.out_channels
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)

    @classmethod
    def from_pretrained(cls, model_name: str, pretrained: str | None = None, layer: int = -2,
                        dtype: torch.dtype | None = None) -> "OpenClipTower":
        import open_clip

        model = open_clip.create_model(model_name, pretrained=pretrained, precision="fp32")
        visual = model.visual
        mean = getattr(visual, "image_mean", None) or OPENAI_CLIP_MEAN
        std = getattr(visual, "image_std", None) or OPENAI_CLIP_STD
        tower = cls(visual, model_name=model_name, source_layers=len(visual.transformer.resblocks), layer=layer,
                    image_mean=mean, image_std=std)
        return tower.to(dtype or torch.float32).eval()

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "OpenClipTower":
        import open_clip

        model = open_clip.create_model(description["model_name"], pretrained=None, precision="fp32")
        return cls(model.visual, model_name=description["model_name"], source_layers=description["source_layers"],
                   layer=description["layer"], image_mean=description["image_mean"],
                   image_std=description["image_std"]).eval()

    def describe(self) -> dict[str, Any]:
        return {"library": "open_clip", "model_name": self.model_name, "source_layers": self.source_layers,
                "layer": self.layer, "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.visual.transformer(self.visual._embeds(pixel_values))
        return hidden[:, 1:]


def load_vision_tower(model: str, *, layer: int = -2, pretrained: str | None = None,
                      dtype: torch.dtype | None = None) -> VisionTower:
    """A pretrained tower: ``open_clip:<name>`` (with ``pretrained`` tag or file) or a transformers id/folder."""
    if model.startswith(OPEN_CLIP_PREFIX):
        return OpenClipTower.from_pretrained(model[len(OPEN_CLIP_PREFIX):], pretrained, layer, dtype)
    if pretrained is not None:
        raise ValueError("a pretrained tag or file is for open_clip models (--model open_clip:<name>) only")
    return TransformersClipTower.from_pretrained(model, layer, dtype)


def build_vision_tower(description: dict[str, Any]) -> VisionTower:
    """A tower with the structure `VisionTower.describe` gave, and random weights."""
    library = description.get("library")
    if library == "transformers":
        return TransformersClipTower.from_description(description)
    if library == "open_clip":
        return OpenClipTower.from_description(description)
    raise ValueError(f"unknown vision tower library {library!r} (expected 'transformers' or 'open_clip')")


