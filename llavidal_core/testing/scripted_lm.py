"""Chat LMs with replies known in advance, for testing code that asks an LLM (judges, curation steps).

`save_scripted_lm` saves a real transformers Llama whose greedy reply to any chat prompt is a given text: its
layers add nothing to the residual stream (zero output projections), its embeddings are one-hot and its output
matrix maps each token to the next one of the reply, so generation walks the reply word by word (a real model,
chat template, ``generate`` and decoding). `save_garbage_lm` saves a tiny random chat Llama whose replies are
noise. Both load with ``from_pretrained`` and carry `CHAT_TEMPLATE`.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %} ASSISTANT:{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def save_scripted_lm(folder: Path, reply: str) -> Path:
    """A Llama + word-level tokenizer in ``folder`` whose greedy reply to any chat prompt is ``reply``
    (its whitespace-separated words, each distinct, joined with single spaces)."""
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
    hidden = size + size % 2  # RoPE wants an even head size
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
        for token in vocab.values():  # by default every token is followed by the end of the reply
            model.lm_head.weight[vocab["</s>"], token] = 1.0
        for current, following in zip(chain, chain[1:]):
            model.lm_head.weight[:, vocab[current]] = 0.0
            model.lm_head.weight[vocab[following], vocab[current]] = 10.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_garbage_lm(folder: Path, seed: int = 7) -> Path:
    """A tiny random chat Llama in ``folder``: its replies are noise, never JSON."""
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    build_tiny_causal_lm(seed=seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
