"""`LlavidalForConditionalGeneration`: the fusion head that splices projected cue features into a causal LM.

Each cue's feature rows go through its projector (a `ModuleDict` keyed by cue name) and are scattered, with
``masked_scatter``, into the LM's input embeddings at that cue's patch-token positions; the LM then runs on
``inputs_embeds``. Start/end tokens are ordinary embedding rows. Cue features are used at prefill only, so
generation with a KV cache works unchanged. `set_trainable` / `freeze` choose which parts learn: the LM,
the projectors, or only the cue-token rows of the embeddings (a gradient mask keeps the base rows fixed).
Features handed in are checked (numpy arrays taken as tensors, NaN/inf refused naming the cue and sample),
and `from_pretrained` is strict: a checkpoint lacking any weight, or with NaN/inf in the projectors or
cue-token rows, is an error instead of a model with random or NaN parts.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.utils.deprecation import deprecate_kwarg

from llavidal_core.cue_tokens import add_cue_tokens
from llavidal_core.cues import CueSpec
from llavidal_core.errors import LlavidalError
from llavidal_core.feature_inputs import as_feature_tensor, check_finite_by_sample
from llavidal_core.finite import check_finite
from llavidal_core.hub import push_to_hub, write_model_card
from llavidal_core.modeling.configuration_llavidal import LlavidalConfig
from llavidal_core.modeling.standardize import StandardizedProjector
from llavidal_core.plugins import build_projector

TRAINABLE_PARTS = ("llm", "projectors", "embeddings")
CUE_INPUTS = ("cue_features", "cue_feature_masks")


class MissingWeightsError(LlavidalError):
    """A llavidal checkpoint lacks weights that loading would otherwise fill with random values."""


class LlavidalPreTrainedModel(PreTrainedModel):
    config_class = LlavidalConfig
    config: LlavidalConfig
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class LlavidalForConditionalGeneration(LlavidalPreTrainedModel, GenerationMixin):
    """A causal LM (``self.language_model``) plus one projector per cue (``self.projectors[cue]``)."""

    def __init__(self, config: LlavidalConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_model = language_model
        hidden_size = config.text_config.hidden_size
        self.projectors = nn.ModuleDict({spec.name: _build_cue_projector(spec, hidden_size) for spec in config.cue_specs})
        self._trainable_parts = frozenset({"llm", "projectors"})
        self._embedding_grad_hooks: list[Any] = []
        self.post_init()

    # -- construction -----------------------------------------------------------------------------------

    @classmethod
    def from_language_model(
        cls,
        language_model: PreTrainedModel,
        cues: Sequence[CueSpec],
        tokenizer_or_token_ids: Any,
        *,
        use_start_end: bool = True,
        base_model_name_or_path: str | None = None,
        cue_encoders: Mapping[str, Any] | None = None,
    ) -> "LlavidalForConditionalGeneration":
        """Wrap an already-loaded causal LM, giving it the cues' tokens and fresh projectors.

        ``tokenizer_or_token_ids`` is the LM's tokenizer (the cue tokens are added to it, see
        `llavidal_core.cue_tokens`) or a ready ``{cue: {"patch", "start", "end"}}`` id mapping. The LM's
        embeddings grow to cover the new ids; every new row (input and output embeddings) starts as the mean
        of the existing rows, as the seed initialises its start/end rows.
        """
        cues = tuple(cues)
        if isinstance(tokenizer_or_token_ids, Mapping):
            cue_token_ids = {name: dict(ids) for name, ids in tokenizer_or_token_ids.items()}
            vocab_size = 1 + max(i for ids in cue_token_ids.values() for i in ids.values() if i is not None)
        else:
            cue_token_ids = add_cue_tokens(tokenizer_or_token_ids, cues, use_start_end)
            vocab_size = len(tokenizer_or_token_ids)
        grow_token_embeddings(language_model, vocab_size)
        if base_model_name_or_path is None:
            base_model_name_or_path = language_model.config.name_or_path or None
        config = LlavidalConfig(
            text_config=language_model.config,
            cues=[spec.to_dict() for spec in cues],
            cue_token_ids=cue_token_ids,
            use_start_end=use_start_end,
            base_model_name_or_path=base_model_name_or_path,
            cue_encoders=dict(cue_encoders or {}),
            dtype=language_model.dtype,
        )
        model = cls(config, language_model=language_model)
        return model.to(device=language_model.device, dtype=language_model.dtype)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Only the projectors belong to this class; the LM is initialised by its own class.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=getattr(self.config.text_config, "initializer_range", 0.02))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # -- saving and loading ---------------------------------------------------------------------------

    def save_pretrained(self, save_directory, *args, processor: Any = None, **kwargs):
        """Save as transformers does, plus the model card and, when given, the processor's files."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if processor is not None:
            processor.save_pretrained(save_directory)
        write_model_card(self.config, save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load as transformers does, but strictly: a full llavidal checkpoint must hold every weight.

        transformers fills weights a checkpoint lacks with random values and only logs a note; for a fused
        model that means projectors (or standardisation statistics, or cue-token rows) that differ on every
        load. Here any missing weight is an error, and so are NaN/inf values in the parts llavidal adds.

        Raises:
            MissingWeightsError: the checkpoint lacks weights, naming the folder or repo and the keys.
            NonFiniteError: a projector weight or cue-token row holds NaN or inf.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, loading_info = super().from_pretrained(pretrained_model_name_or_path, *model_args,
                                                      output_loading_info=True, **kwargs)
        missing = sorted(loading_info["missing_keys"])
        if missing:
            raise MissingWeightsError(
                f"{pretrained_model_name_or_path}: the checkpoint lacks {len(missing)} weight(s) of the llavidal "
                f"model, which would start random: {describe_keys(missing)}. Is it a complete save_pretrained "
                "folder (an adapter-only folder loads with from_adapter)?"
            )
        model.check_added_weights_finite(pretrained_model_name_or_path)
        return (model, loading_info) if output_loading_info else model

    def check_added_weights_finite(self, source: Any) -> None:
        """Refuse NaN/inf in what llavidal adds to the LM: projector weights, buffers and cue-token rows.

        Raises:
            NonFiniteError: naming ``source`` (a folder or repo id) and the tensor.
        """
        for name, tensor in self.projectors.state_dict().items():
            check_finite(tensor, f"{source}: projectors.{name}")
        token_ids = self.config.new_token_ids
        for weight in self._embedding_weights():
            rows = weight.detach()[[i for i in token_ids if i < weight.shape[0]]]
            check_finite(rows, f"{source}: the cue-token rows {token_ids} of the embeddings")

    def save_adapter(self, save_directory, processor: Any = None):
        """Save only the projectors and the cue-token embedding rows, and, when the LM is a peft model (LoRA
        training), its adapters as the PEFT folder ``lora/`` (see `llavidal_core.modeling.adapter`)."""
        from llavidal_core.modeling.adapter import save_adapter

        return save_adapter(self, save_directory, processor)

    @classmethod
    def from_adapter(cls, adapter, base=None, *, merge_lora: bool = True,
                     **base_kwargs) -> "LlavidalForConditionalGeneration":
        """Load an adapter folder or repo onto ``base`` (a model, path or repo id; default: the one it names).

        Its ``lora/`` (LoRA training) is applied through peft, merged into the LM unless ``merge_lora=False``
        (then ``language_model`` is a ``PeftModel``, e.g. to train on).
        """
        from llavidal_core.modeling.adapter import load_adapter

        return load_adapter(cls, adapter, base, merge_lora=merge_lora, **base_kwargs)

    def push_to_hub(self, repo_id: str, *, processor: Any = None, adapter_only: bool = False, **hub_kwargs):
        """Upload the model (or only its adapter) and the processor to ``repo_id`` in one commit."""

        def save(folder, resolved_repo_id):
            if adapter_only:
                self.save_adapter(folder, processor)
            else:
                self.save_pretrained(folder, processor=processor)
            write_model_card(self.config, folder, resolved_repo_id, adapter_only)

        return push_to_hub(save, repo_id, **hub_kwargs)

    # -- embeddings ---------------------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def resize_token_embeddings(self, *args, **kwargs) -> nn.Embedding:
        embeddings = super().resize_token_embeddings(*args, **kwargs)
        self.set_trainable(self._trainable_parts)  # the gradient mask hooks belong to the old weights
        return embeddings

    # -- the splice ---------------------------------------------------------------------------------------

    def cue_patch_mask(self, input_ids: torch.LongTensor, cue: str) -> torch.BoolTensor:
        """``[B, T]`` True where ``input_ids`` holds the cue's patch token."""
        return input_ids == self.config.cue_token_ids[cue]["patch"]

    def project_cue_features(self, cue: str, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The projected rows ``[n, hidden]`` of one cue: ``features`` ``[B, rows, dim]`` minus the masked-out rows."""
        spec = self._spec(cue)
        if features.shape[-1] != spec.feature_dim:
            raise ValueError(
                f"cue {cue!r}: features have width {features.shape[-1]}, the model expects {spec.feature_dim} "
                f"(features shape {tuple(features.shape)})"
            )
        if mask is not None:
            if tuple(mask.shape) != tuple(features.shape[:-1]):
                raise ValueError(
                    f"cue {cue!r}: feature mask shape {tuple(mask.shape)} does not match the features' leading "
                    f"dimensions {tuple(features.shape[:-1])}"
                )
            rows = features[mask.to(device=features.device, dtype=torch.bool)]
        else:
            rows = features.reshape(-1, features.shape[-1])
        projector = self.projectors[cue]
        weight = next(projector.parameters())
        return projector(rows.to(device=weight.device, dtype=weight.dtype))

    def splice_cue_features(
        self,
        input_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor,
        cue_features: Mapping[str, torch.Tensor],
        cue_feature_masks: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Return ``inputs_embeds`` with each cue's projected rows scattered onto its patch-token positions.

        Rows fill positions in reading order (sample by sample, left to right), so features of the samples
        that have a cue come in batch order; samples without the cue have no patch tokens for it and no
        unmasked rows. The number of patch positions must equal the number of rows, cue by cue. Features may
        be torch tensors or numpy arrays, ``[B, rows, dim]`` (or ``[rows, dim]``), and must be finite.

        Raises:
            ValueError: unknown cues, a row/position count mismatch, a feature width the cue does not have;
                `NonFiniteError` (a ``ValueError``) for NaN/inf values, naming the cue and the sample.
            TypeError: features that are neither tensors nor numpy arrays, naming the cue.
        """
        cue_feature_masks = cue_feature_masks or {}
        unknown = sorted(set(cue_features) - set(self.config.cue_names))
        if unknown:
            raise ValueError(f"features were given for unknown cues {unknown}; the model's cues are "
                             f"{list(self.config.cue_names)}")
        for cue in self.config.cue_names:
            positions = self.cue_patch_mask(input_ids, cue)
            num_positions = int(positions.sum())
            if cue not in cue_features or cue_features[cue] is None:
                if num_positions:
                    raise ValueError(
                        f"cue {cue!r}: the input has {num_positions} {self._spec(cue).patch_token} positions "
                        "but no features were given for it"
                    )
                continue
            features = as_feature_tensor(cue_features[cue], f"cue {cue!r}: features")
            check_finite_by_sample(features, f"cue {cue!r}: features")
            mask = cue_feature_masks.get(cue)
            if mask is not None:
                mask = as_feature_tensor(mask, f"cue {cue!r}: feature mask")
            projected = self.project_cue_features(cue, features, mask)
            if projected.shape[0] != num_positions:
                raise ValueError(
                    f"cue {cue!r}: the input has {num_positions} {self._spec(cue).patch_token} positions but "
                    f"{projected.shape[0]} unmasked feature rows were given"
                )
            projected = projected.to(device=inputs_embeds.device, dtype=inputs_embeds.dtype)
            scatter_mask = positions.to(inputs_embeds.device).unsqueeze(-1).expand_as(inputs_embeds)
            inputs_embeds = inputs_embeds.masked_scatter(scatter_mask, projected)
        return inputs_embeds

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        cue_features: Mapping[str, torch.Tensor] | None = None,
        cue_feature_masks: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The LM's input embeddings for ``input_ids``, with the cue features spliced in when given.

        With ``cue_features`` given (even empty), every patch token must get a feature row; without (the
        decoding steps of generation), the tokens are embedded as they are.
        """
        inputs_embeds = self.get_input_embeddings()(input_ids)
        if cue_features is not None:
            inputs_embeds = self.splice_cue_features(input_ids, inputs_embeds, cue_features, cue_feature_masks)
        return inputs_embeds

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cue_features: Mapping[str, torch.Tensor] | None = None,
        cue_feature_masks: Mapping[str, torch.Tensor] | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ):
        """Embed ``input_ids``, splice in the cue features, run the LM (loss: shifted CE, -100 ignored)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, cue_features, cue_feature_masks)
        elif cue_features:
            raise ValueError("cue_features need input_ids (to find the patch tokens), not inputs_embeds")
        return self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def _expand_inputs_for_generation(self, expand_size: int = 1, is_encoder_decoder: bool = False,
                                      input_ids: torch.LongTensor | None = None, **model_kwargs):
        """transformers' expansion for beam search and ``num_return_sequences``, cue features included: each
        sample's rows are repeated ``expand_size`` times, next to it, as its ``input_ids`` are (a ``[B, rows,
        dim]`` batch along dim 0; the ``[rows, dim]`` of a single sample as a whole)."""
        cue_inputs = {key: model_kwargs.pop(key) for key in CUE_INPUTS if model_kwargs.get(key) is not None}
        if expand_size > 1 and input_ids is not None:
            for key, per_cue in cue_inputs.items():
                cue_inputs[key] = {cue: _repeat_per_sample(value, expand_size, self.cue_patch_mask(input_ids, cue))
                                   for cue, value in per_cue.items()}
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size=expand_size, is_encoder_decoder=is_encoder_decoder, input_ids=input_ids, **model_kwargs)
        model_kwargs.update(cue_inputs)
        return input_ids, model_kwargs

    def prepare_inputs_for_generation(self, *args, inputs_embeds: torch.Tensor | None = None,
                                      is_first_iteration: bool | None = False, **kwargs):
        # inputs_embeds named here so that generate(inputs_embeds=...) is accepted (embeddings spliced by hand)
        model_inputs = super().prepare_inputs_for_generation(*args, inputs_embeds=inputs_embeds,
                                                             is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in CUE_INPUTS:  # the features are in the KV cache after prefill
                model_inputs.pop(key, None)
        return model_inputs

    # -- what trains ---------------------------------------------------------------------------------------

    @property
    def trainable_parts(self) -> frozenset[str]:
        return self._trainable_parts

    def set_trainable(self, parts: Iterable[str]) -> None:
        """Make exactly ``parts`` trainable and freeze the rest.

        ``"llm"``: every LM weight (embeddings included); ``"projectors"``: the cue projectors;
        ``"embeddings"``: only the cue-token rows of the input (and, if untied, output) embeddings, through a
        gradient mask, so the base rows never change (use weight decay 0 on them: decay ignores gradients).
        """
        parts = frozenset(parts)
        unknown = sorted(parts - set(TRAINABLE_PARTS))
        if unknown:
            raise ValueError(f"unknown trainable parts {unknown}; choose from {list(TRAINABLE_PARTS)}")
        for handle in self._embedding_grad_hooks:
            handle.remove()
        self._embedding_grad_hooks = []
        self.requires_grad_(False)
        self.language_model.requires_grad_("llm" in parts)
        self.projectors.requires_grad_("projectors" in parts)
        if "embeddings" in parts and "llm" not in parts:
            for weight in self._embedding_weights():
                weight.requires_grad_(True)
                row_mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
                row_mask[[i for i in self.config.new_token_ids if i < weight.shape[0]]] = 1
                self._embedding_grad_hooks.append(weight.register_hook(lambda grad, m=row_mask: grad * m))
        self._trainable_parts = parts

    def freeze(self, *parts: str) -> None:
        """Freeze ``parts``, leaving the other parts as they are."""
        self.set_trainable(self._trainable_parts - set(parts))

    def _embedding_weights(self) -> list[nn.Parameter]:
        return embedding_weights(self)

    def _spec(self, cue: str) -> CueSpec:
        return next(spec for spec in self.config.cue_specs if spec.name == cue)

    # -- standardised cues ---------------------------------------------------------------------------------

    def unfitted_standardized_cues(self) -> list[str]:
        """Cues whose spec asks for standardised features and whose statistics are not fitted yet."""
        return [name for name, projector in self.projectors.items()
                if isinstance(projector, StandardizedProjector) and not projector.is_fitted]

    def fit_feature_statistics(self, cue: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set a standardised cue's per-dimension feature mean and standard deviation (``[feature_dim]`` each).

        Raises:
            ValueError: the cue is not standardised; `NonFiniteError` when either statistic holds NaN or inf
                (features with NaN or inf were averaged), naming the cue.
        """
        projector = self.projectors[cue]
        if not isinstance(projector, StandardizedProjector):
            raise ValueError(f"cue {cue!r} is not standardised (its spec has standardize=False)")
        check_finite(mean, f"cue {cue!r}: the feature mean fitted for standardisation")
        check_finite(std, f"cue {cue!r}: the feature standard deviation fitted for standardisation")
        projector.fit(mean.to(projector.feature_mean.device), std.to(projector.feature_std.device))


def _repeat_per_sample(features: Any, times: int, patch_positions: torch.Tensor) -> Any:
    """One cue's features (or mask) for ``times`` copies of each sample, next to each other, as transformers
    expands ``input_ids``: ``[B, rows, ...]`` along dim 0; ``[rows, dim]`` (every sample's rows in reading
    order) split by each sample's patch positions (``patch_positions``: ``[B, seq]`` bool) and each part
    repeated. None stays None."""
    if features is None:
        return None
    features = as_feature_tensor(features, "cue features")
    if features.ndim == 2 and features.dtype != torch.bool:
        counts = patch_positions.sum(dim=1).tolist()
        if sum(counts) != features.shape[0]:  # the splice names the mismatch; keep the rows as they are
            return features
        return torch.cat([part for part in features.split(counts) for _ in range(times)])
    return features.repeat_interleave(times, dim=0)


def describe_keys(keys: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` keys, comma-separated, and how many more there are."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _build_cue_projector(spec: CueSpec, hidden_size: int) -> nn.Module:
    projector = build_projector(spec.projector, spec.feature_dim, hidden_size)
    return StandardizedProjector(projector, spec.feature_dim) if spec.standardize else projector


def untied_output_weight(model: nn.Module) -> nn.Parameter | None:
    """The weight of ``model``'s output embeddings (the LM head) when it is not tied to the input embeddings.

    ``model`` is a causal LM or the fusion model (anything with ``get_input_embeddings`` and
    ``get_output_embeddings``). None when there are no output embeddings or they share the input embeddings'
    weight: the input rows are then the output rows too, so there is nothing more to save, copy or grow.
    """
    output = model.get_output_embeddings()
    if output is None or output.weight is model.get_input_embeddings().weight:
        return None
    return output.weight


def embedding_weights(model: nn.Module) -> list[nn.Parameter]:
    """The input embedding weight, and the output one when it is untied (`untied_output_weight`)."""
    output_weight = untied_output_weight(model)
    input_weight = model.get_input_embeddings().weight
    return [input_weight] if output_weight is None else [input_weight, output_weight]


@torch.no_grad()
def grow_token_embeddings(language_model: PreTrainedModel, vocab_size: int) -> None:
    """Grow the LM's input/output embeddings to ``vocab_size`` rows, new rows = mean of the old rows."""
    old_size = language_model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old_size:
        return
    language_model.resize_token_embeddings(vocab_size, mean_resizing=False)
    for weight in embedding_weights(language_model):
        weight[old_size:] = weight[:old_size].mean(dim=0, keepdim=True)


__all__ = ["LlavidalForConditionalGeneration", "LlavidalPreTrainedModel", "MissingWeightsError", "TRAINABLE_PARTS",
           "describe_keys", "embedding_weights", "grow_token_embeddings", "untied_output_weight"]
