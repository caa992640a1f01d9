"""Log-likelihood of continuations: each scored as the assistant's answer to the context, with the cue features.

This is how llavidal scores multiple-choice options (`llavidal_core.evaluation.mcq_scoring`): the context
is the user turn, the continuation the answer, in the model's training chat template; the scored tokens
are the processor's answer labels, the continuation's tokens and the end-of-answer token, as lmms-eval's
LLaVA-family models score ``continuation + "</s>"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from llavidal_core.errors import LlavidalError

IGNORE_INDEX = -100


@torch.no_grad()
def continuation_scores(model, processor, messages: Sequence[str], continuations: Sequence[str],
                        features_list: Sequence[Mapping[str, torch.Tensor]]) -> list[tuple[float, bool]]:
    """``(mean negative log-likelihood, is_greedy)`` of each continuation after its user message, in one batch.

    ``messages[i]`` is the user turn (with the placeholders of the cues in ``features_list[i]``,
    ``{cue: (rows, dim)}``), ``continuations[i]`` the answer. The first value is the mean over the scored
    tokens of -log p (nats per token, the LM loss: lower is likelier); the second is True when greedy
    decoding picks every scored token. Raises `LlavidalError` when a sample has no scored token left
    (cut off by ``model_max_length``).
    """
    conversations = [[{"from": "human", "value": message}, {"from": "gpt", "value": continuation}]
                     for message, continuation in zip(messages, continuations, strict=True)]
    batch = processor(conversations, [dict(features) for features in features_list])
    parameter = next(model.parameters())
    outputs = model(
        input_ids=batch["input_ids"].to(parameter.device),
        attention_mask=batch["attention_mask"].to(parameter.device),
        cue_features={cue: t.to(parameter.device, parameter.dtype) for cue, t in batch["cue_features"].items()},
        cue_feature_masks={cue: t.to(parameter.device) for cue, t in batch["cue_feature_masks"].items()},
    )
    logits = outputs.logits[:, :-1].float()  # [B, T-1, vocab]: position t predicts token t+1
    labels = batch["labels"][:, 1:].to(logits.device)  # [B, T-1]
    scored = labels != IGNORE_INDEX
    counts = scored.sum(dim=1)
    if bool((counts == 0).any()):
        index = int((counts == 0).nonzero()[0])
        raise LlavidalError(f"continuation {continuations[index]!r}: no token of it is left after cutting the "
                            f"sample to the model's {processor.model_max_length} tokens")
    token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean_nll = -(token_log_probs * scored).sum(dim=1) / counts
    greedy = ((logits.argmax(dim=-1) == labels) | ~scored).all(dim=1)
    return [(float(nll), bool(is_greedy)) for nll, is_greedy in zip(mean_nll.tolist(), greedy.tolist())]
