"""Trained PoseCLIP folders and zero-shot action classification by the nearest text embedding.

A PoseCLIP folder is what ``llavidal pose train`` writes: the pose encoder (``config.json`` +
``model.safetensors``, loadable alone with ``PoseCueEncoder.from_pretrained`` — it is what
``llavidal extract pose --model`` takes) and ``poseclip.json``, which names the CLIP text tower it was
aligned with, the prompt template, the training actions and the learned logit scale. When the text tower
was trained too, it is saved in ``text_encoder/`` and ``poseclip.json`` points there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from llavidal_core.errors import LlavidalError
from llavidal_pose.encoder import PoseCueEncoder
from llavidal_pose.text import ActionTextEncoder, action_prompts

POSECLIP_FILE = "poseclip.json"
TEXT_ENCODER_FOLDER = "text_encoder"


@dataclass
class PoseCLIPInfo:
    """The contents of ``poseclip.json``."""

    text_model: str
    prompt_template: str
    actions: list[str]
    logit_scale: float
    metrics: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        (directory / POSECLIP_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "PoseCLIPInfo":
        path = directory / POSECLIP_FILE
        if not path.is_file():
            raise LlavidalError(f"{directory}: not a PoseCLIP folder (no {POSECLIP_FILE}; "
                                "`llavidal pose train` writes one)")
        info = cls(**json.loads(path.read_text()))
        if info.text_model == TEXT_ENCODER_FOLDER:
            info.text_model = str(directory / TEXT_ENCODER_FOLDER)
        return info


def load_pose_encoder(name_or_path: str | os.PathLike, **kwargs: Any) -> PoseCueEncoder:
    """A trained `PoseCueEncoder` in eval mode (``from_pretrained`` insists on every weight)."""
    return PoseCueEncoder.from_pretrained(name_or_path, **kwargs).eval()


@dataclass
class PoseCLIP:
    """A pose encoder and the text tower it was aligned with."""

    encoder: PoseCueEncoder
    text: ActionTextEncoder
    info: PoseCLIPInfo

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "PoseCLIP":
        directory = Path(directory)
        info = PoseCLIPInfo.load(directory)
        return cls(load_pose_encoder(directory), ActionTextEncoder.from_pretrained(info.text_model), info)

    @torch.no_grad()
    def action_embeddings(self, actions: Sequence[str], template: str | None = None) -> torch.Tensor:
        """Normalised text embeddings ``(K, embed_dim)`` of the prompts of ``actions``."""
        return self.text(action_prompts(actions, template or self.info.prompt_template))

    @torch.no_grad()
    def classify(self, raws: Sequence[Any], actions: Sequence[str] | None = None,
                 template: str | None = None) -> torch.Tensor:
        """Probabilities ``(N, K)`` over ``actions`` (default: the training actions) for each input."""
        actions = list(actions or self.info.actions)
        x = self.encoder.batch(raws)
        return zero_shot_logits(self.encoder, x, self.action_embeddings(actions, template),
                                self.info.logit_scale).softmax(dim=-1)


def zero_shot_logits(encoder: PoseCueEncoder, x: torch.Tensor, class_embeddings: torch.Tensor,
                     logit_scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``logit_scale`` x cosine similarity between the pose embeddings of ``x`` and each class embedding."""
    pose = torch.nn.functional.normalize(encoder.embed(x).float(), dim=-1)
    return pose @ class_embeddings.to(pose.device).T * logit_scale


@torch.no_grad()
def zero_shot_accuracy(encoder: PoseCueEncoder, x: torch.Tensor, labels: torch.Tensor,
                       class_embeddings: torch.Tensor, batch_size: int = 64) -> float:
    """The fraction of ``x`` whose nearest class embedding is its label's."""
    was_training = encoder.training
    encoder.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = zero_shot_logits(encoder, x[start:start + batch_size], class_embeddings)
        correct += int((logits.argmax(dim=-1).cpu() == labels[start:start + batch_size]).sum())
    encoder.train(was_training)
    return correct / max(len(x), 1)
