"""What ``llavidal extract pose`` adds to the core's engine (`llavidal_core.extraction_engine`): which files are
skeletons, and the encoder ``--model`` names.

``--model`` is a trained PoseCLIP folder or Hub id, or ``random``: random weights of the default
configuration, to try the pipeline before a PoseCLIP is trained; that is said in a warning and in each
file's metadata (``random_weights``, ``note``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from llavidal_core.errors import UsageError
from llavidal_core.extraction import InputFile, collect_inputs

RANDOM_MODEL = "random"
RANDOM_SEED = 0
RANDOM_NOTE = "random weights (--model random): for trying the pipeline, not trained features"
SKELETON_SUFFIXES = (".skeleton", ".npy", ".npz")

logger = logging.getLogger(__name__)


def is_skeleton_path(path: Path) -> bool:
    return path.suffix.lower() in SKELETON_SUFFIXES


def collect_skeletons(inputs: Iterable[str | os.PathLike]) -> list[InputFile]:
    """Skeleton files, folders searched for them and path lists, sorted, each with the root of its id
    (see `llavidal_core.extraction.collect_inputs`)."""
    return collect_inputs(inputs, is_skeleton_path)


def load_extraction_encoder(model: str, device, dtype):
    """The `PoseCueEncoder` named by ``--model`` (a PoseCLIP folder, a Hub id, or ``random``) on ``device`` in
    ``dtype``, its ``metadata_notes`` saying which. Raises `UsageError` when ``model`` cannot be loaded."""
    import torch

    from llavidal_pose import __version__
    from llavidal_pose.encoder import PoseCueEncoder
    from llavidal_pose.zero_shot import load_pose_encoder

    if model == RANDOM_MODEL:
        logger.warning(RANDOM_NOTE)
        torch.manual_seed(RANDOM_SEED)
        encoder = PoseCueEncoder().eval()
        notes = {"encoder": RANDOM_MODEL, "random_weights": "true", "random_seed": str(RANDOM_SEED),
                 "note": RANDOM_NOTE}
    else:
        try:
            encoder = load_pose_encoder(model)
        except Exception as exc:  # noqa: BLE001 - any failure to load is a bad --model
            raise UsageError(f"--model {model}: cannot load a pose encoder ({type(exc).__name__}: {exc})") from None
        notes = {"encoder": str(model), "random_weights": "false"}
    import json
    from dataclasses import asdict

    encoder.metadata_notes = {**notes, "encoder_class": "llavidal_pose.encoder:PoseCueEncoder",
                              "llavidal_pose_version": __version__,
                              "preprocessing": json.dumps(asdict(encoder.preprocessing), sort_keys=True)}
    return encoder.to(device=device, dtype=dtype)
