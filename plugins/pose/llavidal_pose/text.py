"""The text side of PoseCLIP: a CLIP text tower (transformers) turning action prompts into embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TEXT_MODEL = "openai/clip-vit-base-patch16"
DEFAULT_PROMPT_TEMPLATE = "a person {action}"


def action_prompts(actions: Sequence[str], template: str = DEFAULT_PROMPT_TEMPLATE) -> list[str]:
    """One prompt per action name, e.g. ``"a person waving"``."""
    if "{action}" not in template:
        raise ValueError(f"the prompt template {template!r} has no '{{action}}' to fill in")
    return [template.format(action=action.replace("_", " ")) for action in actions]


class ActionTextEncoder(nn.Module):
    """``CLIPTextModelWithProjection`` + its tokenizer: prompts → L2-normalised ``(n, projection_dim)``."""

    def __init__(self, model: nn.Module, tokenizer, name_or_path: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: torch.dtype | None = None) -> "ActionTextEncoder":
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        model = CLIPTextModelWithProjection.from_pretrained(name_or_path, dtype=dtype)
        return cls(model.eval(), AutoTokenizer.from_pretrained(name_or_path), str(name_or_path))

    @property
    def embed_dim(self) -> int:
        return self.model.config.projection_dim

    def indistinct_prompts(self, prompts: Sequence[str]) -> list[tuple[str, str, list[int]]]:
        """Pairs of different prompts that the tokenizer turns into the same ids (e.g. unknown words all
        becoming the unknown token), as ``(first, second, ids)``: the text tower cannot tell them apart."""
        seen: dict[tuple[int, ...], str] = {}
        clashes = []
        for prompt in prompts:
            ids = tuple(self.tokenizer(prompt, truncation=True)["input_ids"])
            if ids in seen and seen[ids] != prompt:
                clashes.append((seen[ids], prompt, list(ids)))
            seen.setdefault(ids, prompt)
        return clashes

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        device = self.model.text_projection.weight.device
        inputs = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(device)
        embeddings = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).text_embeds
        return F.normalize(embeddings.float(), dim=-1)
