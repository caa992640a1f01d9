"""One check shared by everything that takes features in: a tensor holding NaN or inf is refused, by name."""

from __future__ import annotations

import torch

from llavidal_core.errors import LlavidalError


class NonFiniteError(LlavidalError, ValueError):
    """A tensor that must hold finite numbers holds NaN or inf."""


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """Raise `NonFiniteError` naming ``what`` when a floating-point or complex ``tensor`` (any shape) holds NaN
    or inf; integer and bool tensors are always finite.

    The message is ``"{what}: N of M values are not finite (NaN or inf)"``.
    """
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return
    bad = int(finite.numel() - finite.sum())
    raise NonFiniteError(f"{what}: {bad} of {tensor.numel()} values are not finite (NaN or inf)")
