"""A judge run here: any transformers causal LM with a chat template (a model folder or a Hub id).

The messages go through the tokenizer's own chat template (``apply_chat_template`` with the generation prompt);
a template that refuses a ``system`` message (Gemma's, early Mistral's) gets the system text prepended to the
first user message instead. At temperature 0 decoding is greedy, so the judge is deterministic; above 0 it
samples, seeded once when the weights are loaded. The weights load at the first question, not before: a rerun
whose every judgement is in the cache loads none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.judges import Judge

logger = logging.getLogger(__name__)

SAMPLING_SEED = 0


def merge_system_message(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` without system messages, their text put before the first user message's (blank line between)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        for message in rest:
            if message["role"] == "user":
                message["content"] = f"{system}\n\n{message['content']}"
                break
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


class LocalJudge(Judge):
    """A transformers causal LM as the judge (``model_id``: a folder or a Hub id), on ``device`` in ``dtype``
    (defaults: the GPU when there is one, float32 on the CPU, bfloat16 or float16 on a GPU).

    Raises `LlavidalError` naming the model when it is no model folder, cannot be loaded, or its tokenizer has
    no chat template (a judge must be a chat / instruct model).
    """

    def __init__(self, model_id: str | Path, *, device: str | None = None, dtype: str | None = None,
                 temperature: float = 0.0):
        super().__init__()
        import torch
        from transformers import AutoConfig, AutoTokenizer

        from llavidal_core.devices import choose_device, default_dtype
        from llavidal_core.model_location import hub_failures_named, model_location

        self.location = model_location(model_id)
        self.device = choose_device(device)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or default_dtype(self.device))
        with hub_failures_named(self.location):
            config = AutoConfig.from_pretrained(self.location)
            self.tokenizer = AutoTokenizer.from_pretrained(self.location)
        if not getattr(self.tokenizer, "chat_template", None):
            raise LlavidalError(f"judge {model_id}: its tokenizer has no chat template; the judge must be a chat "
                                "(instruct) model")
        self._model = None  # loaded at the first question: a rerun answered from the cache loads no weights
        self.temperature = float(temperature)
        self.deterministic = self.temperature == 0
        local = Path(self.location).is_dir()
        where = str(Path(self.location).resolve()) if local else self.location
        commit = getattr(config, "_commit_hash", None)
        revision = f"@{commit}" if commit and not local else ""
        dtype_name = str(self.dtype).removeprefix("torch.")
        self.identity = f"transformers {where}{revision} dtype={dtype_name} temperature={self.temperature:g}"

    @property
    def model(self):
        """The judge's weights, loaded on first use (and the sampling seed set then, above temperature 0)."""
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            from llavidal_core.model_location import hub_failures_named

            logger.info("loading the judge %s", self.location)
            with hub_failures_named(self.location):
                self._model = AutoModelForCausalLM.from_pretrained(self.location, dtype=self.dtype)
            self._model = self._model.to(self.device).eval()
            if not self.deterministic:
                torch.manual_seed(SAMPLING_SEED)
        return self._model

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: ``messages`` through the chat template, generation prompt added."""
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:
            if not any(m["role"] == "system" for m in messages):
                raise LlavidalError(f"judge {self.identity}: its chat template refuses the messages: {exc}") from exc
            logger.debug("the judge's chat template refuses a system message (%s); merged into the user's", exc)
            return self.tokenizer.apply_chat_template(merge_system_message(messages), add_generation_prompt=True,
                                                      tokenize=False)

    def _reply(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        import torch

        encoded = self.tokenizer(self.render(messages), return_tensors="pt", add_special_tokens=False)
        encoded = {key: value.to(self.device) for key, value in encoded.items()}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        sampling = {"do_sample": True, "temperature": self.temperature} if not self.deterministic else \
            {"do_sample": False}
        with torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=max_tokens, pad_token_id=pad, **sampling)
        return self.tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
