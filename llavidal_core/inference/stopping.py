"""Stop sequences handled as token sequences, not as characters.

The seed strips its stop string with ``str.rstrip``, which removes any trailing *characters* of the stop
string ("</s>" also eats a trailing "s" or ">" of the answer). Here a stop string is tokenized, generation
stops once a row's new tokens end with that token sequence, and the answer is cut just before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria


def stop_token_sequences(tokenizer, stop_strings: Sequence[str]) -> list[list[int]]:
    """Each stop string as the token ids it has inside running text (without a word-boundary marker)."""
    sequences = []
    for text in stop_strings:
        if not text:
            raise ValueError("a stop string must not be empty")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if text in tokenizer.all_special_tokens or len(ids) == 1:
            sequences.append(ids)
            continue
        marked = tokenizer("a" + text, add_special_tokens=False)["input_ids"]  # "a</s>": no leading marker
        alone = tokenizer("a", add_special_tokens=False)["input_ids"]
        sequences.append(marked[len(alone):] if marked[: len(alone)] == alone else ids)
    return sequences


def _ends_with(row: list[int], sequence: list[int]) -> bool:
    return len(row) >= len(sequence) and row[len(row) - len(sequence):] == sequence


class StopOnTokenSequences(StoppingCriteria):
    """Stop each row once its newly generated tokens end with one of ``sequences``."""

    def __init__(self, sequences: Sequence[Sequence[int]], prompt_length: int):
        self.sequences = [list(s) for s in sequences if s]
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = [any(_ends_with(row[self.prompt_length:], s) for s in self.sequences) for row in input_ids.tolist()]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_at_stop(token_ids: Sequence[int], sequences: Sequence[Sequence[int]]) -> list[int]:
    """``token_ids`` up to (not including) the first occurrence of any stop sequence."""
    ids = list(token_ids)
    first = len(ids)
    for sequence in sequences:
        n = len(sequence)
        for start in range(0, len(ids) - n + 1):
            if ids[start:start + n] == list(sequence):
                first = min(first, start)
                break
    return ids[:first]
