"""Features handed in by a caller (to the processor or the fusion model): torch tensors or numpy arrays, finite.

One NaN or infinity in one feature row spreads through the projector and attention into every logit of its
sample, and in training into every weight. The finiteness test itself is `llavidal_core.finite.check_finite`,
the one check every entry point shares; this module only says which sample of a batch is at fault.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llavidal_core.finite import check_finite


def as_feature_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` as a torch tensor: a tensor as it is, a numeric numpy array through ``torch.from_numpy``.

    Raises:
        TypeError: ``value`` is neither (a list, a string, an object array, ...), naming ``what``.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise TypeError(f"{what}: a numpy array of dtype {value.dtype}, expected a numeric array")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what}: expected a torch.Tensor or a numpy.ndarray, got {type(value).__module__}."
                    f"{type(value).__qualname__}")


def check_finite_by_sample(features: torch.Tensor, what: str) -> None:
    """Check a batch ``[B, ...]`` sample by sample, so that the error says which sample holds NaN or inf.

    Raises:
        NonFiniteError: ``"{what} of sample {i}: N of M values are not finite (NaN or inf)"``.
    """
    if features.ndim < 3:  # [rows, dim]: rows of one sample, or of several already flattened together
        check_finite(features, what)
        return
    for index, sample in enumerate(features):
        check_finite(sample, f"{what} of sample {index}")


__all__ = ["as_feature_tensor", "check_finite_by_sample"]
