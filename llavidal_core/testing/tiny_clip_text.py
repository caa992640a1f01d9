"""A tiny random CLIP text tower with its tokenizer, saved as ``save_pretrained`` writes them (no downloads).

Sizes are transformers' test sizes (vocabulary 99, hidden 32, 2 layers, 4 heads); the projection width is a
parameter, so a test can match whatever embedding width its model projects into. The tokenizer is
word-level over `ACTION_CORPUS` and wraps every text as ``<|startoftext|> ... <|endoftext|>``; the end token
is not id 2, so CLIP pools at the first end token (not at the largest id, its legacy rule). Load the folder
with ``CLIPTextModelWithProjection.from_pretrained`` and ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

ACTION_CORPUS = (
    "a photo of a person waving squatting walking clapping drinking water eating a meal brushing teeth "
    "sitting down standing up reading writing jumping kicking something picking up throwing hopping "
    "taking off putting on a jacket shoes hat phone call cheering hand shaking hands hugging pointing"
)
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<|startoftext|>",
                  "eos_token": "<|endoftext|>"}
TINY_CLIP_VOCAB_SIZE = 99


def build_tiny_clip_tokenizer(corpus: str = ACTION_CORPUS):
    """A word-level `PreTrainedTokenizerFast` (lower-cased) that adds CLIP's start and end tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False)
    tokenizer.train_from_iterator([corpus], trainer=trainer)
    if tokenizer.get_vocab_size() > TINY_CLIP_VOCAB_SIZE:
        raise ValueError(f"the corpus has {tokenizer.get_vocab_size()} words; the tiny CLIP holds {TINY_CLIP_VOCAB_SIZE}")
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tokenizer.token_to_id(bos)), (eos, tokenizer.token_to_id(eos))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=77, **SPECIAL_TOKENS)


def save_tiny_clip_text_model(directory: str | Path, projection_dim: int = 32, seed: int = 0) -> Path:
    """Save a random `CLIPTextModelWithProjection` (projecting to ``projection_dim``) and its tokenizer."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    directory = Path(directory)
    tokenizer = build_tiny_clip_tokenizer()
    config = CLIPTextConfig(
        vocab_size=TINY_CLIP_VOCAB_SIZE, hidden_size=32, intermediate_size=37, projection_dim=projection_dim,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    CLIPTextModelWithProjection(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
