"""`StandardizedProjector`: a cue's projector behind a fixed per-dimension standardisation of its features.

Frozen encoder features are often badly conditioned for a freshly initialised projector: a large offset
shared by every row and small directions that carry the answer (in the demo, the object rows' shared mean
has norm 7.1 while each dimension varies by about 0.36 around it). With ``CueSpec.standardize`` the fusion head subtracts a
per-dimension mean and divides by a per-dimension standard deviation before projecting. Both are fitted
once, on the training features, before a cue's first training stage (`llavidal_core.training.runner`), and
then travel with the model as buffers under ``projectors.<cue>.feature_mean`` / ``feature_std``: saved in
full checkpoints and adapters, handed on between stages, and applied unchanged at inference.
"""

from __future__ import annotations

import torch
from torch import nn

MIN_STD = 1e-6  # dimensions that never vary keep a divisor of 1 (no blow-up of tiny differences at inference)


class StandardizedProjector(nn.Module):
    """``projector((features - feature_mean) / feature_std)``; the statistics start as the identity, unfitted."""

    def __init__(self, projector: nn.Module, feature_dim: int):
        super().__init__()
        self.projector = projector
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the statistics (``std`` below `MIN_STD` counts as 1) and mark them fitted."""
        if mean.shape != self.feature_mean.shape or std.shape != self.feature_std.shape:
            raise ValueError(f"statistics of shape {tuple(mean.shape)} / {tuple(std.shape)} for features of width "
                             f"{self.feature_mean.shape[0]}")
        with torch.no_grad():
            self.feature_mean.copy_(mean)
            self.feature_std.copy_(torch.where(std < MIN_STD, torch.ones_like(std), std))
            self.fitted.fill_(True)

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        mean, std = self.feature_mean.to(rows.dtype), self.feature_std.to(rows.dtype)
        return self.projector((rows - mean) / std)


def feature_statistics(tensors, feature_dim: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-dimension mean and standard deviation over the rows of ``tensors`` (any iterable of ``(..., dim)``),
    accumulated in float64; returns ``(mean, std, rows)``."""
    total = torch.zeros(feature_dim, dtype=torch.float64)
    squares = torch.zeros(feature_dim, dtype=torch.float64)
    rows = 0
    for tensor in tensors:
        flat = tensor.reshape(-1, feature_dim).to(torch.float64)
        total += flat.sum(dim=0)
        squares += flat.square().sum(dim=0)
        rows += flat.shape[0]
    if rows == 0:
        raise ValueError("no feature rows to fit the statistics on")
    mean = total / rows
    variance = (squares / rows - mean.square()).clamp(min=0.0)
    return mean.float(), variance.sqrt().float(), rows
