"""Tiny fusion models for tests: the seed's three cues at toy sizes, fused into the tiny random LM.

`TINY_CUES` keeps the seed's token strings and kinds of row counts (fixed for video and pose, 2 rows per
object) with small feature widths, so a whole batch runs in milliseconds. `random_cue_features` makes one
sample's features for a cue.
"""

from __future__ import annotations

import dataclasses

from llavidal_core.seed_cues import OBJECT, POSE, VIDEO

TINY_VIDEO = dataclasses.replace(VIDEO, feature_dim=12, num_tokens=5)
TINY_OBJECT = dataclasses.replace(OBJECT, feature_dim=6, tokens_per_item=2)
TINY_POSE = dataclasses.replace(POSE, feature_dim=7, num_tokens=3)
TINY_CUES = (TINY_VIDEO, TINY_OBJECT, TINY_POSE)


def build_tiny_llavidal(cues=TINY_CUES, seed: int = 0, use_start_end: bool = True, **lm_overrides):
    """``(model, processor)``: a tiny random LM wrapped with ``cues``, and its processor (same token ids)."""
    import torch

    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    processor = LlavidalProcessor(build_tiny_tokenizer(), cues, use_start_end=use_start_end)
    language_model = build_tiny_causal_lm(seed, **lm_overrides)
    torch.manual_seed(seed + 1)
    model = LlavidalForConditionalGeneration.from_language_model(
        language_model, cues, processor.cue_token_ids, use_start_end=use_start_end
    )
    return model.eval(), processor


def random_cue_features(spec, num_items: int | None = None, seed: int = 0):
    """One sample's features for ``spec``: ``(rows, feature_dim)`` (``num_items`` items for variable cues)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randn(spec.num_rows(num_items), spec.feature_dim, generator=generator)
