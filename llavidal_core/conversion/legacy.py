"""`convert_legacy`: turn the seed's projector checkpoint plus its base LM into a llavidal model folder.

The seed saves ``mm_projector.bin`` / ``llavidal_weights.bin`` holding its projectors
(``model.mm_projector.*`` for video, ``model.mm_projector_forobject.*``, ``model.mm_projector_forpose.*``) and
the FULL ``model.embed_tokens.weight``, whose rows beyond the base tokenizer are the cue tokens in the seed's
order. The layout is told apart by that number of extra rows: 9 is LLAVIDAL (video, object, pose), 3 is
Video-ChatGPT (video only), whatever the base vocabulary size. The whole embedding matrix is taken from the
checkpoint, because the seed trained every row and loads them all at inference; the new output-embedding
rows start at the mean of the base rows, as in the seed. The result is a complete model folder (config,
weights, tokenizer, processor, card) that ``AutoModelForCausalLM``/``AutoProcessor`` load.

The base may be the LLaVA-style folder the seed starts from (``model_type: llava``, ``.bin`` shards, a
SentencePiece ``tokenizer.model``): see `llavidal_core.base_models`. The processor is saved with the seed's
tokenization (``sentencepiece_legacy``) unless asked otherwise, so prompts get the ids the weights were trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from llavidal_core.conversion.checkpoints import ConversionError, check_output_folder, staged_output_folder
from llavidal_core.cues import CueSpec
from llavidal_core.seed_cues import LLAVIDAL_CUES, VIDEO

EMBED_KEY = "model.embed_tokens.weight"
PROJECTOR_PREFIXES = {
    "video": "model.mm_projector",
    "object": "model.mm_projector_forobject",
    "pose": "model.mm_projector_forpose",
}


@dataclass(frozen=True)
class LegacyLayout:
    name: str
    cues: tuple[CueSpec, ...]

    @property
    def new_rows(self) -> int:
        return 3 * len(self.cues)  # patch, start and end per cue


LAYOUTS = {layout.new_rows: layout for layout in (LegacyLayout("LLAVIDAL", LLAVIDAL_CUES),
                                                   LegacyLayout("Video-ChatGPT", (VIDEO,)))}


@dataclass
class LegacyReport:
    out: Path
    layout: LegacyLayout
    cue_token_ids: dict
    drifted_base_rows: int

    def summary(self) -> str:
        cues = ", ".join(f"{name} (patch {ids['patch']}, start {ids['start']}, end {ids['end']})"
                         for name, ids in self.cue_token_ids.items())
        lines = [f"converted a {self.layout.name} checkpoint to {self.out}", f"cues: {cues}"]
        if self.drifted_base_rows:
            lines.append(f"{self.drifted_base_rows} base embedding rows differ from the base LM's (the seed trained "
                         "all rows); the checkpoint's rows were kept")
        return "\n".join(lines)


def load_legacy_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such projection checkpoint")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def detect_layout(state: dict[str, torch.Tensor], base_vocab_size: int, source: str) -> LegacyLayout:
    if EMBED_KEY not in state:
        raise ConversionError(f"{source}: no {EMBED_KEY} (is it the seed's mm_projector.bin / llavidal_weights.bin?)")
    rows = state[EMBED_KEY].shape[0]
    extra = rows - base_vocab_size
    if extra not in LAYOUTS:
        known = ", ".join(f"{n} ({layout.name})" for n, layout in LAYOUTS.items())
        raise ConversionError(f"{source}: {EMBED_KEY} has {rows} rows, {extra} beyond the base tokenizer's "
                              f"{base_vocab_size}; expected {known}")
    layout = LAYOUTS[extra]
    if layout.name == "Video-ChatGPT" and any(k.startswith(PROJECTOR_PREFIXES["object"]) for k in state):
        raise ConversionError(f"{source}: 3 new embedding rows (Video-ChatGPT) but object/pose projectors are present")
    return layout


def projector_state(state: dict[str, torch.Tensor], spec: CueSpec, hidden_size: int,
                    source: str) -> dict[str, torch.Tensor]:
    prefix = PROJECTOR_PREFIXES[spec.name]
    weight, bias = state.get(f"{prefix}.weight"), state.get(f"{prefix}.bias")
    if weight is None or bias is None:
        raise ConversionError(f"{source}: no {prefix}.weight/.bias for the {spec.name} cue")
    if tuple(weight.shape) != (hidden_size, spec.feature_dim):
        raise ConversionError(f"{source}: {prefix}.weight has shape {tuple(weight.shape)}, expected "
                              f"({hidden_size}, {spec.feature_dim}) for the {spec.name} cue and the base LM")
    return {"weight": weight, "bias": bias}


def convert_legacy(base: str, projection: str | os.PathLike, out: str | os.PathLike, *,
                   tokenization: str = "sentencepiece_legacy", overwrite: bool = False) -> LegacyReport:
    """Load the base LM and tokenizer (path or repo id), apply the legacy checkpoint, save to ``out``.

    ``tokenization`` is the processor's (`llavidal_core.processing.LlavidalProcessor`): the seed's ids by default.
    The model is written into a staging folder beside ``out`` and renamed at the end, so a failed run leaves
    no half folder; a non-empty ``out`` is a `ConversionError` (checked before any loading) unless ``overwrite``.
    """
    from transformers import AutoTokenizer

    from llavidal_core.base_models import load_base_language_model
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor

    check_output_folder(Path(out), overwrite=overwrite)
    source = str(projection)
    state = load_legacy_state(projection)
    tokenizer = AutoTokenizer.from_pretrained(base)
    base_vocab_size = len(tokenizer)
    layout = detect_layout(state, base_vocab_size, source)
    language_model = load_base_language_model(base)
    hidden_size = language_model.config.get_text_config().hidden_size
    projectors = {spec.name: projector_state(state, spec, hidden_size, source) for spec in layout.cues}
    embeddings = state[EMBED_KEY]
    if embeddings.shape[1] != hidden_size:
        raise ConversionError(f"{source}: {EMBED_KEY} has width {embeddings.shape[1]}, "
                              f"the base LM's hidden size is {hidden_size}")
    base_rows = language_model.get_input_embeddings().weight.detach()[:base_vocab_size]
    drifted = int((~torch.isclose(embeddings[:base_vocab_size].to(base_rows.dtype), base_rows).all(-1)).sum())

    processor = LlavidalProcessor(tokenizer, layout.cues, tokenization=tokenization)
    expected_ids = range(base_vocab_size, base_vocab_size + layout.new_rows)
    given_ids = sorted(i for ids in processor.cue_token_ids.values() for i in ids.values())
    if given_ids != list(expected_ids):
        raise ConversionError(f"{base}: its tokenizer already has some cue tokens; the cue ids would be {given_ids}, "
                              f"not {list(expected_ids)} as in the checkpoint")
    model = LlavidalForConditionalGeneration.from_language_model(
        language_model, layout.cues, processor.cue_token_ids, base_model_name_or_path=str(base)
    )
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[: embeddings.shape[0]] = embeddings.to(weight.dtype)
        for name, tensors in projectors.items():
            model.projectors[name].load_state_dict({k: v.to(weight.dtype) for k, v in tensors.items()})
    out = Path(out)
    with staged_output_folder(out, overwrite=overwrite) as staging:
        model.save_pretrained(staging, processor=processor)
    return LegacyReport(out, layout, processor.cue_token_ids, drifted)

