"""`LlavidalConfig`: the composite config of the fusion model (a causal LM's config plus the cues).

It nests any causal LM's config under ``text_config`` (as LLaVA does) and records, per cue, its `CueSpec`
(the projector choice included) and the ids of its patch/start/end tokens. ``config.json`` therefore says
exactly which cue plugins a saved model needs and where its cue tokens live in the vocabulary.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Mapping

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from llavidal_core.cues import CueSpec
from llavidal_core.errors import LlavidalError


class NotALlavidalModelError(LlavidalError):
    """A folder or repo expected to hold a llavidal model holds another kind of model."""


class LlavidalConfig(PreTrainedConfig):
    """Config of `LlavidalForConditionalGeneration`.

    Args:
        text_config: the language model's config (a `PreTrainedConfig` or its dict; Llama by default).
        cues: the cues, as `CueSpec` objects or their dicts, in splice order.
        cue_token_ids: ``{cue: {"patch": id, "start": id | None, "end": id | None}}``.
        use_start_end: whether each cue's patch run is wrapped in its start/end tokens.
        base_model_name_or_path: the repo id or path of the base LM (what an adapter-only save loads onto).
        cue_encoders: ``{cue: encoder record}``: how each cue's training features were made
            (`llavidal_core.encoder_records.EncoderRecord` as a dict; older models: an encoder id or path),
            so inference computes features the same way. Encoder folders are saved in the model folder's
            ``cue_encoders/<cue>/`` when they were on the training machine.
    """

    model_type = "llavidal"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    cues: list[dict[str, Any]] = field(default_factory=list)
    cue_token_ids: dict[str, dict[str, int | None]] = field(default_factory=dict)
    use_start_end: bool = True
    base_model_name_or_path: str | None = None
    cue_encoders: dict[str, Any] = field(default_factory=dict)
    tie_word_embeddings: bool = False

    def __setattr__(self, key: str, value: Any) -> None:
        # A text_config given as a dict (config.text_config = {...}, or a from_pretrained override) becomes
        # its config class, as at construction, instead of a dict that later code cannot use.
        if key == "text_config" and isinstance(value, Mapping):
            value, _ = self.sub_configs_defaults["text_config"].create_subconfig(key, dict(value))
        super().__setattr__(key, value)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "LlavidalConfig":
        """Load ``config.json`` from a folder or repo, refusing one that is not a llavidal model's.

        Raises:
            NotALlavidalModelError: the config's ``model_type`` is another (a plain LM such as ``llama``).
        """
        config_dict, _ = cls.get_config_dict(pretrained_model_name_or_path, **dict(kwargs))
        found = config_dict.get("model_type")
        if found != cls.model_type:
            raise NotALlavidalModelError(
                f"{pretrained_model_name_or_path}: config.json has model_type {found!r}, not a llavidal model "
                f"({cls.model_type!r}); a plain language model is a base to build one on (a recipe's model.base, "
                "LlavidalForConditionalGeneration.from_language_model), and an original LLAVIDAL checkpoint "
                "converts with `llavidal convert legacy`"
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def __post_init__(self, **kwargs):
        self.cues = [spec.to_dict() if isinstance(spec, CueSpec) else dict(spec) for spec in self.cues]
        if kwargs.get("attn_implementation") is None and isinstance(self.text_config, PreTrainedConfig):
            # the composite's setting overwrites the LM's: keep the LM's unless one is asked for
            kwargs["attn_implementation"] = self.text_config._attn_implementation
        super().__post_init__(**kwargs)
        specs = self.cue_specs  # validates every spec
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"LlavidalConfig: cue names must be unique, got {names}")
        missing = [name for name in names if name not in self.cue_token_ids]
        if missing:
            raise ValueError(f"LlavidalConfig: cue_token_ids has no entry for the cues {missing}")
        if self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = True

    @property
    def cue_specs(self) -> tuple[CueSpec, ...]:
        """The cues as `CueSpec` objects, in splice order."""
        return tuple(CueSpec.from_dict(spec) for spec in self.cues)

    @property
    def cue_names(self) -> tuple[str, ...]:
        return tuple(spec["name"] for spec in self.cues)

    @property
    def new_token_ids(self) -> list[int]:
        """Every cue token id (patch, start, end), sorted: the vocabulary rows the cues added."""
        ids = {token_id for entry in self.cue_token_ids.values() for token_id in entry.values() if token_id is not None}
        return sorted(ids)

    @property
    def vocab_size(self) -> int:
        return self.text_config.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size


__all__ = ["LlavidalConfig", "NotALlavidalModelError"]
