"""What a cue is: `CueSpec`, the JSON-serialisable description every cue plugin registers.

A cue is one input modality (video, pose, objects, ...) that reaches the LLM as a run of feature rows at
a placeholder in the prompt. The spec says how the placeholder is written, how many rows the features
have and of what width, and which projector maps them into the LLM. It travels in the model's
``config.json``, so a saved model says exactly which plugins it needs.

`CueEncoder`, the ``nn.Module`` base class that turns raw inputs into features, is importable from here
too but is loaded from `llavidal_core.encoder` on first use, so importing this module stays free of torch.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

CUE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CueSpec:
    """The contract between a cue plugin, the processor and the fusion head.

    Exactly one of ``num_tokens`` (a fixed row count, e.g. 356 for video) and ``tokens_per_item`` (rows
    come in groups whose number varies per sample, e.g. 8 per object) is set. ``standardize``: the fusion
    head standardises the features per dimension (statistics fitted on the training data) before the
    projector (`llavidal_core.modeling.standardize`); off for LLAVIDAL's own cues.
    """

    name: str
    placeholder: str
    patch_token: str
    feature_dim: int
    start_token: str | None = None
    end_token: str | None = None
    num_tokens: int | None = None
    tokens_per_item: int | None = None
    projector: str = "linear"
    standardize: bool = False
    distribution: str | None = None
    version: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not CUE_NAME_PATTERN.match(self.name):
            raise ValueError(
                f"CueSpec name {self.name!r} must be lower-case letters, digits and underscores, "
                "starting with a letter"
            )
        if not isinstance(self.feature_dim, int) or self.feature_dim <= 0:
            raise ValueError(f"CueSpec {self.name!r}: feature_dim must be a positive int, got {self.feature_dim!r}")
        if (self.num_tokens is None) == (self.tokens_per_item is None):
            raise ValueError(
                f"CueSpec {self.name!r}: set exactly one of num_tokens (fixed row count) and "
                f"tokens_per_item (rows per item, variable item count); got num_tokens={self.num_tokens!r}, "
                f"tokens_per_item={self.tokens_per_item!r}"
            )
        for field in ("num_tokens", "tokens_per_item"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"CueSpec {self.name!r}: {field} must be a positive int, got {value!r}")
        if not isinstance(self.standardize, bool):
            raise ValueError(f"CueSpec {self.name!r}: standardize must be true or false, got {self.standardize!r}")
        if (self.start_token is None) != (self.end_token is None):
            raise ValueError(f"CueSpec {self.name!r}: give both start_token and end_token, or neither")
        tokens = [t for t in self.special_tokens() if t is not None]
        if any(not isinstance(t, str) or not t for t in tokens):
            raise ValueError(f"CueSpec {self.name!r}: placeholder and patch/start/end tokens must be non-empty strings")
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"CueSpec {self.name!r}: placeholder, patch, start and end tokens must all differ: {tokens}")

    @property
    def has_variable_rows(self) -> bool:
        """True when the row count depends on the sample (a multiple of ``tokens_per_item``)."""
        return self.tokens_per_item is not None

    @property
    def uses_start_end(self) -> bool:
        return self.start_token is not None

    def special_tokens(self) -> tuple[str, ...]:
        """The cue's token strings in the order they are added to a tokenizer: placeholder, patch, start, end."""
        tokens = [self.placeholder, self.patch_token]
        if self.uses_start_end:
            tokens += [self.start_token, self.end_token]
        return tuple(tokens)

    def num_rows(self, num_items: int | None = None) -> int:
        """Feature rows for one sample: fixed, or ``num_items * tokens_per_item`` for variable cues."""
        if self.num_tokens is not None:
            return self.num_tokens
        if num_items is None or num_items < 0:
            raise ValueError(f"cue {self.name!r} has a variable row count: pass the number of items")
        return num_items * self.tokens_per_item

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CueSpec":
        if not isinstance(data, dict):
            raise ValueError(f"a CueSpec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"CueSpec {data.get('name', '?')!r} has unknown fields {unknown}; known fields are {sorted(known)} "
                "(was it written by a newer llavidal?)"
            )
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in data)
        if missing:
            raise ValueError(f"CueSpec {data.get('name', '?')!r} is missing required fields {missing}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CueSpec":
        return cls.from_dict(json.loads(text))


def __getattr__(name: str):
    if name == "CueEncoder":
        from llavidal_core.encoder import CueEncoder

        return CueEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
