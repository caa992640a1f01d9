"""The original LLAVIDAL's tokenization: transformers 4.x's slow (SentencePiece) LLaMA tokenizer, reproduced.

The original trained with ``AutoTokenizer(..., use_fast=False)`` and evaluated with the fast tokenizer that
transformers 4.x converted from the same ``tokenizer.model`` in its ``legacy`` mode. Both split the text at
every added token (``</s>``, ``<vid_patch>``, ``<vid_end>``, ...) and hand each piece between them to
SentencePiece on its own, and SentencePiece writes a word-boundary mark ``▁`` before every piece it is given.
So ``"<vid_end> ASSISTANT:"`` becomes ``<vid_end>``, ``▁▁``, ``A``, ... there, and an answer written with a
leading space (``" The"``) is supervised as ``▁``, ``▁The``. transformers 5 marks the boundary once per text,
not once per piece (``▁A`` after ``<vid_end>``), and no tokenizer setting restores the old split.

`SentencePieceLegacyEncoder` gives the old ids from the tokenizer of today: each piece between added tokens
gets SentencePiece's normalisation (``▁`` prepended, spaces written as ``▁``), is cut into SentencePiece's
words (a word starts at a ``▁`` that follows anything but ``▁``), and each word goes through the tokenizer's
own BPE/Unigram model, bypassing its normaliser and pre-tokeniser. On LLaMA-style models (no normaliser rules,
byte fallback) this is SentencePiece's own result; tests/fidelity checks it id for id against the original code
under transformers 4.41.1.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from llavidal_core.errors import LlavidalError

WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁"
# what LLaMA-style conversions put in the normaliser: spaces written as "▁", a "▁" prepended (both redone here)
SENTENCEPIECE_NORMALIZER_STEPS = frozenset({"Replace", "Prepend"})


class LegacyTokenizationError(LlavidalError):
    """The tokenizer cannot reproduce the original's SentencePiece tokenization."""


class SentencePieceLegacyEncoder:
    """Token ids as transformers 4.x's legacy LLaMA tokenizer gave them, with a per-character span flag.

    Args:
        tokenizer: a transformers tokenizer backed by the ``tokenizers`` library whose model is a SentencePiece
            conversion (BPE or Unigram over ``▁``-marked pieces: LLaMA, Vicuna, LLaVA, LLaVA-Lightening).

    Raises:
        LegacyTokenizationError: the tokenizer has no such model.
    """

    def __init__(self, tokenizer: Any):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        model = getattr(backend, "model", None)
        if model is None or type(model).__name__ not in ("BPE", "Unigram"):
            raise LegacyTokenizationError(
                f"tokenization 'sentencepiece_legacy' needs a SentencePiece-converted tokenizer (LLaMA, Vicuna, "
                f"LLaVA); {type(tokenizer).__name__} has model {type(model).__name__}")
        unsupported = _normalizer_steps(backend) - SENTENCEPIECE_NORMALIZER_STEPS
        if unsupported:  # they would be bypassed here, and the ids would silently differ from the tokenizer's
            raise LegacyTokenizationError(
                f"tokenization 'sentencepiece_legacy' reproduces LLaMA's identity-normalised SentencePiece model; "
                f"this tokenizer's normaliser also does {sorted(unsupported)}")
        if tokenizer.convert_tokens_to_ids(WORD_BOUNDARY) in (None, tokenizer.unk_token_id):
            raise LegacyTokenizationError(
                f"tokenization 'sentencepiece_legacy' needs a SentencePiece vocabulary (pieces marked with "
                f"{WORD_BOUNDARY!r}); this {type(tokenizer).__name__} has no {WORD_BOUNDARY!r} piece")
        self.tokenizer = tokenizer
        self._model = model

    def _added_tokens(self) -> dict[str, int]:
        return self.tokenizer.get_added_vocab()  # read each time: cue tokens are added after construction

    def encode(self, text: str, answer_spans: Sequence[tuple[int, int]] = ()) -> tuple[list[int], list[bool]]:
        """``(ids, is_answer)`` for ``text`` (no BOS); a token is an answer token when the word it belongs to
        (or the added token it is) starts inside one of ``answer_spans`` (``[start, end)`` character offsets)."""
        added = self._added_tokens()
        ids: list[int] = []
        flags: list[bool] = []

        def in_answer(position: int) -> bool:
            return any(start <= position < end for start, end in answer_spans)

        position = 0
        for piece in _split_on(text, added):
            if piece in added:
                ids.append(added[piece])
                flags.append(in_answer(position))
            else:
                for word, offset in _sentencepiece_words(piece):
                    word_ids = [token.id for token in self._model.tokenize(word)]
                    ids += word_ids
                    flags += [in_answer(position + offset)] * len(word_ids)
            position += len(piece)
        return ids, flags


def _normalizer_steps(backend: Any) -> set[str]:
    """The kinds of step in the tokenizer's normaliser (``Sequence`` unpacked), e.g. ``{"Replace", "Prepend"}``."""
    def kinds(spec: Any) -> set[str]:
        if not spec:
            return set()
        if spec.get("type") == "Sequence":
            return set().union(*(kinds(step) for step in spec.get("normalizers", [])))
        return {spec.get("type", "?")}

    return kinds(json.loads(backend.to_str()).get("normalizer"))


def _split_on(text: str, added: dict[str, int]) -> list[str]:
    """``text`` cut before and after every added token (longest first), empty pieces dropped."""
    if not added:
        return [text] if text else []
    pattern = re.compile("(" + "|".join(re.escape(token) for token in sorted(added, key=len, reverse=True)) + ")")
    return [piece for piece in pattern.split(text) if piece]


def _sentencepiece_words(piece: str) -> list[tuple[str, int]]:
    """SentencePiece's words of one piece of text, each with the offset in ``piece`` of its first character.

    The piece is normalised as LLaMA's model does (``▁`` prepended, every space written as ``▁``); a word starts
    at the first character and at every ``▁`` that follows a character other than ``▁`` (runs of ``▁`` stay in
    one word: LLaMA's model allows whitespace-only pieces). The prepended ``▁`` has offset 0, like the
    character it precedes.
    """
    normalized = WORD_BOUNDARY + piece.replace(" ", WORD_BOUNDARY)
    starts = [0] + [i for i in range(1, len(normalized))
                    if normalized[i] == WORD_BOUNDARY and normalized[i - 1] != WORD_BOUNDARY]
    ends = starts[1:] + [len(normalized)]
    return [(normalized[start:end], max(start - 1, 0)) for start, end in zip(starts, ends)]
