"""Tiny random vision models with their processors, saved as ``save_pretrained`` writes them (no downloads).

Sizes follow transformers' own tests (reference/perf-pose-object.md §3.3): a BLIP-2 captioner (ViT 30²/2,
Q-Former 32, OPT 16), an OWLv2 detector (ViT 32²/2, text 64 wide, 16 positions) and a CLIP model (ViT 30²/2,
projection 32). Each ``save_tiny_*`` function writes a folder holding the model and its processor (tokenizer
+ image processor), which the ordinary ``from_pretrained`` / ``AutoProcessor.from_pretrained`` load back,
as they would a Hub checkpoint. Tokenizers are word-level, trained in milliseconds on `OBJECT_CORPUS`.
"""

from __future__ import annotations

from pathlib import Path

OBJECT_CORPUS = (
    "question : what objects are in the image ? answer : a photo of a cup , a table and a person . "
    "there is a phone on the desk next to a book , a bottle , a chair and a laptop with a remote control ."
)

BLIP2_NUM_QUERY_TOKENS = 10
BLIP2_IMAGE_SIZE = 30
OWLV2_IMAGE_SIZE = 32
OWLV2_MAX_TEXT_LENGTH = 16
CLIP_IMAGE_SIZE = 30
CLIP_PROJECTION_DIM = 32


def build_word_tokenizer(special_tokens: dict[str, str], extra_special: tuple[str, ...] = (),
                         model_max_length: int = 512, lowercase: bool = True, corpus: str = OBJECT_CORPUS):
    """A `PreTrainedTokenizerFast` over the words of ``corpus`` (special tokens first, in the given order)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([*special_tokens.values(), *extra_special]))
    tokenizer = Tokenizer(models.WordLevel(unk_token=special_tokens["unk_token"]))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    trainer = trainers.WordLevelTrainer(special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator([corpus], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length,
                                  additional_special_tokens=list(extra_special) or None, **special_tokens)


def save_tiny_blip2(directory: str | Path, seed: int = 0, answer_word: str | None = None) -> Path:
    """A tiny random `Blip2ForConditionalGeneration` (OPT language model) and its `Blip2Processor`.

    A random captioner mostly answers nothing useful; with ``answer_word`` (a word of `OBJECT_CORPUS`) its
    language model is rigged to say that word at every step, whatever the image, so a test can follow a
    real generated answer through tag parsing.
    """
    import torch
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig,
                              Blip2VisionConfig, BlipImageProcessor, OPTConfig)

    directory = Path(directory)
    tokenizer = build_word_tokenizer(
        {"bos_token": "</s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
        extra_special=("<image>",),
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ("</s>", "<pad>", "<image>")}
    tokenizer.image_token = "<image>"
    vision = Blip2VisionConfig(image_size=BLIP2_IMAGE_SIZE, patch_size=2, hidden_size=32, projection_dim=32,
                               num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    qformer = Blip2QFormerConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, max_position_embeddings=512, encoder_hidden_size=32)
    text = OPTConfig(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, ffn_dim=4,
                     max_position_embeddings=512, eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
                     bos_token_id=ids["</s>"], embed_dim=16, word_embed_proj_dim=16)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                         text_config=text.to_dict(), num_query_tokens=BLIP2_NUM_QUERY_TOKENS,
                         image_token_index=ids["<image>"])
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    if answer_word is not None:
        _rig_language_model(model.language_model, tokenizer.convert_tokens_to_ids(answer_word))
    model.save_pretrained(directory)
    image_processor = BlipImageProcessor(size={"height": BLIP2_IMAGE_SIZE, "width": BLIP2_IMAGE_SIZE})
    Blip2Processor(image_processor, tokenizer, num_query_tokens=BLIP2_NUM_QUERY_TOKENS).save_pretrained(directory)
    return directory


def _rig_language_model(language_model, token_id: int) -> None:
    """Make an OPT say ``token_id`` always: a constant final hidden state that only that (tied) row matches."""
    import torch

    with torch.no_grad():
        norm = language_model.model.decoder.final_layer_norm
        direction = torch.randn(norm.bias.shape, generator=torch.Generator().manual_seed(0))
        norm.weight.zero_()
        norm.bias.copy_(10 * direction / direction.norm())
        language_model.get_output_embeddings().weight[token_id] = norm.bias


def save_tiny_owlv2(directory: str | Path, seed: int = 0) -> Path:
    """A tiny random `Owlv2ForObjectDetection` and its `Owlv2Processor` (square padding, 32² input)."""
    import torch
    from transformers import (Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor,
                              Owlv2TextConfig, Owlv2VisionConfig)

    directory = Path(directory)
    tokenizer = build_word_tokenizer(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "unk_token": "<unk>"},
        model_max_length=OWLV2_MAX_TEXT_LENGTH,
    )
    text = Owlv2TextConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=OWLV2_MAX_TEXT_LENGTH,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
    vision = Owlv2VisionConfig(image_size=OWLV2_IMAGE_SIZE, patch_size=2, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=37)
    config = Owlv2Config(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=64)
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(config).eval().save_pretrained(directory)
    image_processor = Owlv2ImageProcessor(size={"height": OWLV2_IMAGE_SIZE, "width": OWLV2_IMAGE_SIZE})
    Owlv2Processor(image_processor, tokenizer).save_pretrained(directory)
    return directory


def save_tiny_clip(directory: str | Path, seed: int = 0) -> Path:
    """A tiny random `CLIPModel` (vision 30²/2, projection 32) and its `CLIPProcessor`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    directory = Path(directory)
    tokenizer = build_word_tokenizer(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<unk>"},
        model_max_length=77,
    )
    text = CLIPTextConfig(vocab_size=99, hidden_size=32, projection_dim=CLIP_PROJECTION_DIM, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=37, max_position_embeddings=77,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(image_size=CLIP_IMAGE_SIZE, patch_size=2, hidden_size=32,
                              projection_dim=CLIP_PROJECTION_DIM, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=CLIP_PROJECTION_DIM)
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": CLIP_IMAGE_SIZE},
                                         crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE})
    CLIPProcessor(image_processor, tokenizer).save_pretrained(directory)
    return directory
