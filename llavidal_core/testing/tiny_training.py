"""Tiny training assets for the ``recipes/tiny-*.yaml`` recipes: a random LM, features and ADL-X instructions.

`write_tiny_training_assets(root)` writes, under ``root``:

- ``llm/``: the tiny random Llama and its tokenizer (`llavidal_core.testing.tiny_models`);
- ``features/``: a feature store with video (5, 12), pose (3, 7) and object (n, 2, 6) features per video, at
  the toy sizes of `llavidal_core.testing.tiny_fusion`; each video shows one of a few actions, and its
  features are that action's prototype plus noise, so the answers can be learnt from the features;
- ``train.json``: ADL-X training records (``id``, ``video``, ``object``, ``pose``, ``conversations``), the
  placeholders before or after the question, alternating as in ADL-X.

The tiny recipes name these paths relative to the current directory (``tiny/llm``, ...), so a run from the
folder above ``root`` needs no overrides.
"""

from __future__ import annotations

import json
from pathlib import Path

ACTIONS = (
    "The person drinks water from a cup.",
    "The person picks up a book and reads.",
    "The person sits down, then stands up.",
    "The person brushes teeth.",
)
QUESTIONS = ("What is the person doing in the video?", "Describe the actions in order.")
PLACEHOLDERS = "<video><object><human_pose>"


def tiny_video_id(index: int) -> str:
    return f"{index // 10 + 1:03d}_video_{index % 10 + 1:03d}"


def write_tiny_training_assets(root: str | Path, num_videos: int = 32, seed: int = 0) -> Path:
    """Write the LM, the feature store and ``train.json`` under ``root``; returns ``root``."""
    import torch

    from llavidal_core.features import FeatureStore
    from llavidal_core.testing.tiny_fusion import TINY_OBJECT, TINY_POSE, TINY_VIDEO
    from llavidal_core.testing.tiny_models import save_tiny_causal_lm

    root = Path(root)
    save_tiny_causal_lm(root / "llm", seed=seed)
    generator = torch.Generator().manual_seed(seed)
    prototypes = {
        spec.name: torch.randn(len(ACTIONS), spec.feature_dim, generator=generator) * 2
        for spec in (TINY_VIDEO, TINY_OBJECT, TINY_POSE)
    }
    store = FeatureStore(root / "features")
    records = []
    for index in range(num_videos):
        video_id = tiny_video_id(index)
        action = index % len(ACTIONS)

        def noisy(cue: str, *shape: int) -> torch.Tensor:
            return prototypes[cue][action] + 0.3 * torch.randn(*shape, prototypes[cue].shape[1], generator=generator)

        num_objects = 1 + index % 3
        store.write(video_id, "video", noisy("video", TINY_VIDEO.num_tokens))
        store.write(video_id, "pose", noisy("pose", TINY_POSE.num_tokens))
        store.write(video_id, "object", noisy("object", num_objects, TINY_OBJECT.tokens_per_item))
        question = QUESTIONS[index % len(QUESTIONS)]
        human = f"{question}\n{PLACEHOLDERS}" if index % 2 == 0 else f"{PLACEHOLDERS}\n{question}"
        records.append({
            "id": video_id,
            "video": f"{video_id}.pkl",
            "object": f"{video_id}_object.pkl",
            "pose": f"{video_id}_pose.pkl",
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": ACTIONS[action]}],
        })
    (root / "train.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return root
