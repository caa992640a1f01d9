"""Tiny random causal LMs and tokenizers, built from configs in milliseconds (no downloads).

Sizes follow transformers' own tests: vocabulary 99, hidden size 32, 2 layers, 4 heads. The tokenizer is
a SentencePiece-like BPE (Metaspace pre-tokenizer, so decoding is lossless) trained on a small English
corpus that covers the chat templates, wrapped in `PreTrainedTokenizerFast`.
"""

from __future__ import annotations

from pathlib import Path

TINY_VOCAB_SIZE = 99
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}

TRAINING_CORPUS = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions. "
    "You are llavidal, a large vision-language assistant. USER: ASSISTANT: "
    "What is the person doing in the video? The person drinks water from a cup, then answers a phone. "
    "Which object does the person hold? Describe the actions in order. Choices are (A) (B) (C) (D) 0123456789 "
    "wave clap sit down stand up pick up a book kick walk read eat brush teeth"
)


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE, corpus: str = TRAINING_CORPUS):
    """A BPE tokenizer with ``vocab_size`` entries (special tokens included) trained on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = [SPECIAL_TOKENS[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token")]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator([corpus] * 4, trainer=trainer)
    from tokenizers import processors

    bos_id = tokenizer.token_to_id(SPECIAL_TOKENS["bos_token"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=2048, **SPECIAL_TOKENS)


def tiny_llama_config(vocab_size: int = TINY_VOCAB_SIZE, **overrides):
    """A `LlamaConfig` of transformers' test size (hidden 32, 2 layers, 4 heads, 2 KV heads)."""
    from transformers import LlamaConfig

    values = dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
    )
    values.update(overrides)
    return LlamaConfig(**values)


def build_tiny_causal_lm(seed: int = 0, **config_overrides):
    """A randomly initialised tiny `LlamaForCausalLM` (same weights for the same seed)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(**config_overrides)).eval()


def save_tiny_causal_lm(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny LM and its tokenizer to ``directory`` (loadable with ``from_pretrained``)."""
    directory = Path(directory)
    build_tiny_causal_lm(seed).save_pretrained(directory)
    build_tiny_tokenizer().save_pretrained(directory)
    return directory
