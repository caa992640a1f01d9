"""Helpers for the caption / describe / qa tests: tiny clips, a scripted chat LM and a garbage chat LM.

``save_scripted_lm`` is the approach of tests/evaluation/conftest.py (copied: test folders are not packages):
a real transformers Llama whose greedy reply to any chat prompt is a fixed text, so the local-LLM path (chat
template, generate, decode) runs for real with a reply known in advance.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %} ASSISTANT:{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def write_clip(path: Path, frames: int = 8, fps: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A small H.264 mp4 of random frames (``frames`` at ``fps``), written with PyAV."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def save_scripted_lm(folder: Path, reply: str) -> Path:
    """A Llama + word-level tokenizer in ``folder`` whose greedy reply to any chat prompt is ``reply`` (its
    whitespace-separated words, each distinct, joined with single spaces)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = reply.split()
    assert len(set(words)) == len(words), "each word of a scripted reply must be distinct"
    vocab = {token: index for index, token in enumerate(SPECIALS + ["ASSISTANT:"] + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    size = len(vocab)
    hidden = size + size % 2
    config = LlamaConfig(vocab_size=size, hidden_size=hidden, intermediate_size=4, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, bos_token_id=1, eos_token_id=2,
                         pad_token_id=3, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    chain = ["ASSISTANT:"] + words + ["</s>"]
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for token in vocab.values():
            model.lm_head.weight[vocab["</s>"], token] = 1.0
        for current, following in zip(chain, chain[1:]):
            model.lm_head.weight[:, vocab[current]] = 0.0
            model.lm_head.weight[vocab[following], vocab[current]] = 10.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_garbage_lm(folder: Path) -> Path:
    """A tiny random chat Llama: its replies are noise, never JSON."""
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    build_tiny_causal_lm(seed=7).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


DESCRIPTION_REPLY = '{"Q": "Describe the video in detail.", "A": "Someone drinks water then sits down."}'
QA_REPLY = '[{"Q": "What happens?", "A": "Someone drinks water."}]'


class TextCommandsPlugin:
    """A plugin registering only ``llavidal curate caption|describe|qa`` (independent of the video commands)."""

    from llavidal_core import hookimpl as _hookimpl

    @_hookimpl
    def llavidal_register_commands(self, register):
        from llavidal_curate.text_commands import register_text_commands

        register_text_commands(register)


def register_text_plugin(manager) -> None:
    manager.register(TextCommandsPlugin(), name="curate-text", distribution="llavidal-curate", version="0.1.0")
