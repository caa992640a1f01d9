"""How much memory a llavidal model needs, from its config alone (built on the ``meta`` device: no weights)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    dtype: torch.dtype
    weights_bytes: int
    kv_cache_bytes: int
    sequence_length: int
    batch_size: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes

    def describe(self) -> str:
        gib = 1024 ** 3
        return (
            f"parameters: {self.parameters:,} ({str(self.dtype).removeprefix('torch.')})\n"
            f"weights: {self.weights_bytes / gib:.2f} GiB\n"
            f"KV cache for {self.batch_size} x {self.sequence_length} tokens: {self.kv_cache_bytes / gib:.2f} GiB\n"
            f"total (without activations and cue encoders): {self.total_bytes / gib:.2f} GiB"
        )


def prompt_length_with_cues(config, text_tokens: int = 64) -> int:
    """A typical prompt: every fixed-size cue's rows (+ start/end), one object's rows, and some text."""
    length = text_tokens
    for spec in config.cue_specs:
        length += spec.num_rows(1) + (2 if config.use_start_end else 0)
    return length


def estimate_memory(config, dtype: torch.dtype = torch.float16, sequence_length: int | None = None,
                    batch_size: int = 1, max_new_tokens: int = 512) -> MemoryEstimate:
    from llavidal_core.modeling import LlavidalForConditionalGeneration

    with torch.device("meta"):
        model = LlavidalForConditionalGeneration(config)
    parameters = sum(p.numel() for p in model.parameters())
    element = torch.empty((), dtype=dtype).element_size()
    text = config.text_config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    length = sequence_length or prompt_length_with_cues(config) + max_new_tokens
    kv_cache = 2 * text.num_hidden_layers * kv_heads * head_dim * length * batch_size * element
    return MemoryEstimate(parameters, dtype, parameters * element, kv_cache, length, batch_size)
