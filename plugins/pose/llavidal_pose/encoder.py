"""`PoseCueEncoder`: skeleton files → ``(num_tokens, width)`` pose tokens, plus a CLIP-space embedding.

How the 256 tokens are formed (default configuration): a recording is resampled to 64 frames and the
backbone's two stride-2 layers leave T' = 16 time steps. Its output feature map is averaged over the
joints of each of the 8 body parts of `llavidal_pose.joints.BODY_PARTS` (torso, head, left/right arm,
left/right hand, left/right leg), separately for each of the M = 2 bodies, giving 16 x 2 x 8 = 256 tokens
of width 216, ordered time-major: token ``t * 16 + m * 8 + p`` is body part ``p`` of body ``m`` at
time step ``t``. Another ``num_tokens`` must be a multiple of ``M * 8``; the T' time steps are then
average-pooled (adaptively) to ``num_tokens / (M * 8)``.

The pooled embedding is the mean of the feature map over bodies, time and joints (as Hyperformer's
classifier input), and ``projection`` maps it from ``width`` into the CLIP text space (216 → 512 by
default), where PoseCLIP training aligns it with the text embeddings of action prompts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llavidal_core.cues import CueSpec
from llavidal_core.encoder import CueEncoder
from llavidal_pose import POSE, __version__
from llavidal_pose import joints as ntu
from llavidal_pose.backbone import HyperformerBackbone, body_part_average
from llavidal_pose.preprocess import Preprocessing
from llavidal_pose.skeleton import SkeletonSequence, load_skeleton


SKELETON_SUFFIXES = (".skeleton", ".npy", ".npz")


@dataclasses.dataclass(frozen=True)
class SkeletonPreparer:
    """The picklable raw input → ``(3, T, V, M)`` array step of a `PoseCueEncoder` (no weights)."""

    preprocessing: Preprocessing

    def __call__(self, raw: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        if isinstance(raw, (str, os.PathLike)):
            raw = load_skeleton(raw)
        elif isinstance(raw, np.ndarray):
            raw = SkeletonSequence.from_joints(raw)
        if not isinstance(raw, SkeletonSequence):
            raise TypeError(f"cannot encode a {type(raw).__name__}: give a skeleton file path, a SkeletonSequence "
                            "or a (T, M, V, 3) array")
        return self.preprocessing(raw, rng)


class PoseCueEncoder(CueEncoder):
    """The pose cue's encoder; its ``__init__`` arguments are its ``config.json``.

    Raw inputs are skeleton files (``.skeleton`` of NTU RGB+D, ``.npy``/``.npz`` joint arrays), `SkeletonSequence`s
    or ``(T, M, V, 3)`` arrays; `prepare` makes the backbone's ``(3, T, V, M)`` input of one, `forward` encodes
    a batch of them into ``(num_tokens, width)`` tokens each.
    """

    input_suffixes = SKELETON_SUFFIXES

    def __init__(self, width: int = 216, num_heads: int = 9, depth: int = 10,
                 downsample_layers: Sequence[int] = (5, 8), kernel_size: int = 5, dilations: Sequence[int] = (1, 2),
                 num_frames: int = 64, num_person: int = 2, num_tokens: int = 256, embed_dim: int = 512,
                 center: bool = True, align: bool = True):
        super().__init__()
        tokens_per_step = num_person * ntu.NUM_BODY_PARTS
        if num_tokens % tokens_per_step:
            raise ValueError(f"num_tokens {num_tokens} must be a multiple of num_person x body parts "
                             f"= {num_person} x {ntu.NUM_BODY_PARTS} = {tokens_per_step}")
        self.num_tokens = num_tokens
        self.token_steps = num_tokens // tokens_per_step
        self.preprocessing = Preprocessing(num_frames, num_person, center=center, align=align)
        self.backbone = HyperformerBackbone(3, width, num_heads, depth, tuple(downsample_layers), num_person,
                                            kernel_size, tuple(dilations))
        self.projection = nn.Linear(width, embed_dim)
        nn.init.normal_(self.projection.weight, std=width ** -0.5)
        nn.init.zeros_(self.projection.bias)
        self.register_buffer("part_average", body_part_average(), persistent=False)
        self._spec = dataclasses.replace(
            POSE, feature_dim=width, num_tokens=num_tokens, version=__version__,
            description=f"PoseCLIP (Hyperformer, width {width}, depth {depth}) tokens of skeletons resampled to "
                        f"{num_frames} frames: {ntu.NUM_BODY_PARTS} body parts x {num_person} bodies x "
                        f"{self.token_steps} time steps")

    @classmethod
    def _from_pretrained(cls, **kwargs: Any) -> "PoseCueEncoder":
        kwargs.setdefault("strict", True)  # a checkpoint that lacks weights is an error, not random weights
        return super()._from_pretrained(**kwargs)

    @property
    def spec(self) -> CueSpec:
        return self._spec

    # -- tensors ------------------------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, T, V, M)`` → tokens ``(N, num_tokens, width)`` and the pooled ``(N, width)``."""
        n, m = x.shape[0], x.shape[-1]
        features = self.backbone(x)
        _, c, steps, v = features.shape
        features = features.reshape(n, m, c, steps, v)
        pooled = features.mean(dim=(1, 3, 4))
        parts = features @ self.part_average.to(features.dtype)
        parts = parts.permute(0, 1, 4, 2, 3).reshape(-1, c, steps)
        if steps != self.token_steps:
            parts = F.adaptive_avg_pool1d(parts, self.token_steps)
        tokens = parts.reshape(n, m, ntu.NUM_BODY_PARTS, c, self.token_steps).permute(0, 4, 1, 2, 3)
        return tokens.reshape(n, self.num_tokens, c), pooled

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, V, M)`` → the projected embedding ``(N, embed_dim)`` (not normalised)."""
        return self.projection(self.forward_features(x)[1])

    # -- raw inputs ---------------------------------------------------------------------------------------

    def prepare(self, raw: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """One input — a skeleton file path, a `SkeletonSequence` or a ``(T, M, V, 3)`` array — as ``(3, T, V, M)``
        (``rng``: random augmentation, for training). A file that cannot be read raises `SkeletonFormatError`."""
        return SkeletonPreparer(self.preprocessing)(raw, rng)

    def preparer(self, in_worker: bool = False) -> SkeletonPreparer:
        return SkeletonPreparer(self.preprocessing)

    def batch(self, raws: Sequence[Any]) -> torch.Tensor:
        """Prepared inputs stacked into one ``(N, 3, T, V, M)`` tensor on the encoder's device and dtype."""
        return self._stacked([self.prepare(raw) for raw in raws])

    def forward(self, samples: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Prepared ``(3, T, V, M)`` arrays → one ``(num_tokens, width)`` tensor each, in one backbone pass."""
        tokens, _ = self.forward_features(self._stacked(samples))
        return list(tokens)

    def _stacked(self, samples: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(samples)).to(self.device, self.dtype)
