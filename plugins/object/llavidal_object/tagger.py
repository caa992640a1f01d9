"""`Blip2Tagger`: asks BLIP-2 which objects are in a few keyframes and returns its free-text answers.

The prompt follows community practice for BLIP-2 OPT ("Question: ... Answer:"); generation is greedy, so
the same frames give the same answers. The answers are turned into tags by `llavidal_object.tags`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_PROMPT = "Question: what objects are in the image? Answer:"


class Blip2Tagger:
    """Free-text object answers of a `Blip2ForConditionalGeneration` for RGB frames."""

    def __init__(self, model, processor, *, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 30,
                 batch_size: int = 4) -> None:
        self.model = model
        self.processor = processor
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @torch.no_grad()
    def answers(self, frames: Sequence[np.ndarray]) -> list[str]:
        """One answer per uint8 ``(H, W, 3)`` frame, in order."""
        answers: list[str] = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start:start + self.batch_size])
            inputs = self.processor(images=batch, text=[self.prompt] * len(batch), return_tensors="pt",
                                    padding=True)
            inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new_tokens = generated[:, inputs["input_ids"].shape[1]:]
            answers.extend(text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True))
        return answers
