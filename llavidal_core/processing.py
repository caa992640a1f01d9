"""`LlavidalProcessor`: tokenizer + chat template + placeholder expansion + labels + batching.

A conversation is rendered with a chat template (`llavidal_core.templates`) into prompt and answer
segments; each segment is tokenized on its own and its ids are concatenated with their labels (-100 for
everything but the answers and their ``</s>``), so labels never depend on re-splitting strings. With
``tokenization="sentencepiece_legacy"`` (models from the original LLAVIDAL) the text between two cue runs is
tokenized in one piece as the original's tokenizer did, and the answer tokens are those whose words start
inside an answer segment. A cue
placeholder (``<video>``) in the text is expanded straight into ids: start + N x patch + end, N being the
cue's row count (for objects, 8 per object, counted from the sample's features). A placeholder whose cue has
no features in the sample is dropped, as the seed does. Batches are padded on the right for training and on
the left for generation; the cue features come back stacked per cue, with a row mask where samples differ.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from llavidal_core.cue_tokens import add_cue_tokens
from llavidal_core.cues import CueSpec
from llavidal_core.errors import LlavidalError
from llavidal_core.feature_inputs import as_feature_tensor
from llavidal_core.finite import check_finite
from llavidal_core.legacy_tokenization import SentencePieceLegacyEncoder
from llavidal_core.templates import BASE, BaseLMTemplate, ChatTurn, get_template
from transformers import ProcessorMixin

IGNORE_INDEX = -100
PROCESSOR_CONFIG_NAME = "processor_config.json"
LEGACY_TOKENIZATION = "sentencepiece_legacy"
TOKENIZATIONS = ("native", LEGACY_TOKENIZATION)


class SequenceTooLongError(LlavidalError):
    """A sample is longer than ``model_max_length`` and cutting it would cut a cue's placeholder run."""


@dataclass(frozen=True)
class EncodedSample:
    input_ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class _CueRun:
    cue: str
    start: int
    end: int  # exclusive


class LlavidalProcessor(ProcessorMixin):
    """Turns conversations and per-sample cue features into model inputs (a transformers ``ProcessorMixin``:
    ``AutoProcessor`` loads it, `apply_chat_template` takes transformers-style messages).

    Args:
        tokenizer: the LM's tokenizer; the cue tokens are added to it (see `llavidal_core.cue_tokens`).
        cues: the model's cues, in config order.
        use_start_end: wrap each patch run in the cue's start/end tokens.
        template: the training chat template (`vicuna_v1_1`, `llavidal_v1`, or `base`: the base LM's own, see
            `llavidal_core.templates.BaseLMTemplate`); ``inference_template`` is used for generation prompts.
        model_max_length: longest sample kept (the tokenizer's ``model_max_length`` by default).
        tokenization: ``"native"`` (the tokenizer as it is) or ``"sentencepiece_legacy"`` (the original
            LLAVIDAL's ids: transformers 4.x's slow LLaMA tokenizer, see `llavidal_core.legacy_tokenization`;
            models converted from the original use it). Saved with the processor, so a model is trained and
            prompted with one tokenization.

    Raises:
        ValueError: an unknown ``tokenization``; `LegacyTokenizationError` when the tokenizer cannot give the
            legacy ids.
    """

    def __init__(self, tokenizer: Any, cues: Sequence[CueSpec], *, use_start_end: bool = True,
                 template: str = "vicuna_v1_1", inference_template: str = "llavidal_v1",
                 model_max_length: int | None = None, tokenization: str = "native"):
        from llavidal_core.chat_messages import jinja_chat_template

        self.cues = tuple(cues)
        own = tokenizer.chat_template  # the base LM's template (a string), or the names a saved processor wrote
        base = own.get(BASE) if isinstance(own, dict) else own
        if BASE in (template, inference_template) and not base:
            raise ValueError("template 'base' uses the base LM's own chat template, but its tokenizer has none")
        templates = {name: base if name == BASE else jinja_chat_template(get_template(name), self.cues)
                     for name in (template, inference_template)}
        super().__init__(tokenizer, chat_template=templates[inference_template])
        named = {**(own if isinstance(own, dict) else {}), **({BASE: base} if base else {}),
                 **templates, "default": templates[inference_template]}
        tokenizer.chat_template = named  # saved with the tokenizer: tools using only the tokenizer prompt as trained
        self.cue_encoders: dict[str, Any] = {}  # cue -> encoder, for cue parts given as paths (see apply_chat_template)
        self.name_or_path: str | None = None
        self.use_start_end = use_start_end
        self.template = BaseLMTemplate(tokenizer, base) if template == BASE else get_template(template)
        self.inference_template = (BaseLMTemplate(tokenizer, base) if inference_template == BASE
                                   else get_template(inference_template))
        self.model_max_length = model_max_length or tokenizer.model_max_length
        self.cue_token_ids = add_cue_tokens(tokenizer, self.cues, use_start_end)
        self._specs = {spec.name: spec for spec in self.cues}
        self._cue_by_placeholder = {spec.placeholder: spec.name for spec in self.cues}
        self._placeholder_pattern = re.compile(
            "(" + "|".join(re.escape(spec.placeholder) for spec in self.cues) + ")"
        ) if self.cues else None
        self._strips_leading_space = tokenizer_adds_prefix_space(tokenizer)
        if tokenization not in TOKENIZATIONS:
            raise ValueError(f"unknown tokenization {tokenization!r}; use one of {list(TOKENIZATIONS)}")
        self.tokenization = tokenization
        self._legacy_encoder = SentencePieceLegacyEncoder(tokenizer) if tokenization == LEGACY_TOKENIZATION else None

    # -- one sample --------------------------------------------------------------------------------------

    def cue_run_ids(self, cue: str, rows: int) -> list[int]:
        """The ids a placeholder expands to: start + ``rows`` x patch + end (start/end when used)."""
        ids = self.cue_token_ids[cue]
        run = [ids["patch"]] * rows
        return [ids["start"], *run, ids["end"]] if self.use_start_end else run

    def cue_rows(self, cue: str, features: torch.Tensor) -> int:
        """The number of feature rows of one sample's features for ``cue`` (checked against its spec)."""
        spec = self._spec(cue)
        if features.shape[-1] != spec.feature_dim or features.ndim not in (2, 3):
            per_item = spec.tokens_per_item or spec.num_tokens
            raise ValueError(f"cue {cue!r}: features of shape {tuple(features.shape)}, expected (rows, "
                             f"{spec.feature_dim}) or (items, {per_item}, {spec.feature_dim})")
        rows = features.reshape(-1, spec.feature_dim).shape[0]
        if spec.num_tokens is not None and rows != spec.num_tokens:
            raise ValueError(f"cue {cue!r}: features have {rows} rows, expected {spec.num_tokens}")
        if spec.tokens_per_item is not None and rows % spec.tokens_per_item:
            raise ValueError(f"cue {cue!r}: features have {rows} rows, not a multiple of {spec.tokens_per_item}")
        return rows

    def encode(self, conversation: Sequence[ChatTurn | Mapping[str, Any]], cue_rows: Mapping[str, int] | None = None,
               *, add_generation_prompt: bool = False, sample_index: int = 0, system: str | None = None) -> EncodedSample:
        """Token ids and labels of one conversation; ``cue_rows`` gives each present cue's row count; ``system``
        replaces the template's system text."""
        cue_rows = dict(cue_rows or {})
        template = self.inference_template if add_generation_prompt else self.template
        ids: list[int] = []
        labels: list[int] = []
        if self.tokenizer.bos_token_id is not None:
            ids.append(self.tokenizer.bos_token_id)
            labels.append(IGNORE_INDEX)
        runs: list[_CueRun] = []
        texts: list[tuple[str, bool]] = []  # text since the last cue run, each part flagged answer or not
        for segment in template.segments(conversation, add_generation_prompt, system):
            for piece in self._split_placeholders(segment.text):
                cue = self._cue_by_placeholder.get(piece)
                if cue is None:
                    texts.append((piece, segment.is_answer))
                elif cue in cue_rows:
                    if any(run.cue == cue for run in runs):
                        raise ValueError(f"sample {sample_index}: the placeholder {piece} appears more than once")
                    self._append_text(texts, ids, labels)
                    run_ids = self.cue_run_ids(cue, cue_rows[cue])
                    runs.append(_CueRun(cue, len(ids), len(ids) + len(run_ids)))
                    ids += run_ids
                    labels += [IGNORE_INDEX] * len(run_ids)
        self._append_text(texts, ids, labels)
        unplaced = sorted(set(cue_rows) - {run.cue for run in runs})
        if unplaced:
            placeholders = ", ".join(self._spec(cue).placeholder for cue in unplaced)
            raise ValueError(f"sample {sample_index}: features were given for cues {unplaced} but the text has no "
                             f"placeholder for them ({placeholders})")
        return self._truncate(EncodedSample(ids, labels), runs, sample_index)

    def _append_text(self, texts: list[tuple[str, bool]], ids: list[int], labels: list[int]) -> None:
        """Tokenize the text parts gathered since the last cue run onto ``ids``/``labels``; empties ``texts``.

        ``native``: each part on its own. ``sentencepiece_legacy``: the parts joined, as the original tokenized
        its whole prompt string, answer tokens told apart by where their words start.
        """
        if self._legacy_encoder is not None and texts:
            text, spans, position = "", [], 0
            for part, is_answer in texts:
                if is_answer:
                    spans.append((position, position + len(part)))
                text += part
                position += len(part)
            part_ids, flags = self._legacy_encoder.encode(text, spans)
            ids += part_ids
            labels += [i if flag else IGNORE_INDEX for i, flag in zip(part_ids, flags)]
        else:
            for part, is_answer in texts:
                part_ids = self._tokenize_text(part)
                ids += part_ids
                labels += part_ids if is_answer else [IGNORE_INDEX] * len(part_ids)
        texts.clear()

    def _split_placeholders(self, text: str) -> list[str]:
        if self._placeholder_pattern is None:
            return [text]
        return [piece for piece in self._placeholder_pattern.split(text) if piece]

    def _tokenize_text(self, text: str) -> list[int]:
        if self._strips_leading_space and text.startswith(" "):
            text = text[1:]  # the tokenizer writes the word boundary itself
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _truncate(self, sample: EncodedSample, runs: list[_CueRun], sample_index: int) -> EncodedSample:
        limit = self.model_max_length
        if len(sample.input_ids) <= limit:
            return sample
        for run in runs:
            if run.end > limit:
                raise SequenceTooLongError(
                    f"sample {sample_index}: {len(sample.input_ids)} tokens exceed model_max_length {limit}, and "
                    f"truncating would cut the {self._spec(run.cue).placeholder} run (tokens {run.start}-"
                    f"{run.end - 1}, {run.end - run.start} long); shorten the text or raise model_max_length"
                )
        return EncodedSample(sample.input_ids[:limit], sample.labels[:limit])

    # -- batches -----------------------------------------------------------------------------------------

    def __call__(self, conversations: Sequence[Sequence[ChatTurn | Mapping[str, Any]]],
                 cue_features: Sequence[Mapping[str, torch.Tensor] | None] | None = None, *,
                 add_generation_prompt: bool = False, padding_side: str | None = None,
                 systems: Sequence[str | None] | None = None) -> dict[str, Any]:
        """Encode and pad a batch (``systems``: each conversation's system text, None for the template's).

        Returns ``input_ids``, ``attention_mask``, ``labels`` (not for generation prompts), ``cue_features``
        (``{cue: [B, rows, dim]}``) and ``cue_feature_masks`` (``{cue: [B, rows]}`` bool, for the cues whose
        row count differs between samples or that some samples lack). Padding is on the left for
        generation prompts and on the right otherwise, unless ``padding_side`` says.

        Each sample's features are ``{cue: (rows, dim) or (items, rows_per_item, dim)}``, torch tensors or
        numpy arrays; a cue given as None counts as absent.

        Raises:
            ValueError: unknown cues, shapes the cue's spec does not allow, placeholder problems;
                `NonFiniteError` (a ``ValueError``) for NaN/inf features, naming the sample and cue.
            TypeError: features that are neither tensors nor numpy arrays, naming the sample and cue.
            SequenceTooLongError: a sample too long to cut without cutting a placeholder run.
        """
        if cue_features is None:
            cue_features = [None] * len(conversations)
        if len(cue_features) != len(conversations):
            raise ValueError(f"got {len(conversations)} conversations but {len(cue_features)} feature dicts")
        per_sample = [sample_feature_tensors(index, features) for index, features in enumerate(cue_features)]
        samples = []
        for index, (conversation, features) in enumerate(zip(conversations, per_sample)):
            unknown = sorted(set(features) - set(self._specs))
            if unknown:
                raise ValueError(f"sample {index}: unknown cues {unknown}; the processor's cues are {list(self._specs)}")
            rows = {cue: self.cue_rows(cue, tensor) for cue, tensor in features.items()}
            samples.append(self.encode(conversation, rows, add_generation_prompt=add_generation_prompt,
                                       sample_index=index, system=systems[index] if systems else None))
        side = padding_side or ("left" if add_generation_prompt else "right")
        batch = self.pad(samples, side, with_labels=not add_generation_prompt)
        batch["cue_features"], batch["cue_feature_masks"] = self.collate_cue_features(per_sample)
        return batch

    def pad(self, samples: Sequence[EncodedSample], padding_side: str, with_labels: bool = True) -> dict[str, torch.Tensor]:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        length = max(len(sample.input_ids) for sample in samples)
        input_ids = torch.full((len(samples), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
        labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
        for row, sample in enumerate(samples):
            n = len(sample.input_ids)
            span = slice(length - n, length) if padding_side == "left" else slice(0, n)
            input_ids[row, span] = torch.tensor(sample.input_ids, dtype=torch.long)
            labels[row, span] = torch.tensor(sample.labels, dtype=torch.long)
            attention_mask[row, span] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if with_labels:
            batch["labels"] = labels
        return batch

    def collate_cue_features(self, per_sample: Sequence[Mapping[str, torch.Tensor]]
                             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Stack each cue's features over the batch, zero-padding rows; masks mark the real rows."""
        features: dict[str, torch.Tensor] = {}
        masks: dict[str, torch.Tensor] = {}
        for spec in self.cues:
            tensors = [sample.get(spec.name) for sample in per_sample]
            present = [t.reshape(-1, spec.feature_dim) for t in tensors if t is not None]
            if not present:
                continue
            rows = [0 if t is None else t.reshape(-1, spec.feature_dim).shape[0] for t in tensors]
            stacked = present[0].new_zeros((len(per_sample), max(rows), spec.feature_dim))
            mask = torch.zeros((len(per_sample), max(rows)), dtype=torch.bool)
            for index, tensor in enumerate(tensors):
                if tensor is not None:
                    stacked[index, : rows[index]] = tensor.reshape(-1, spec.feature_dim)
                    mask[index, : rows[index]] = True
            features[spec.name] = stacked
            if not bool(mask.all()):
                masks[spec.name] = mask
        return features, masks

    # -- transformers-style messages -----------------------------------------------------------------------

    def apply_chat_template(self, conversation, *, add_generation_prompt: bool = False, tokenize: bool = True,
                            return_dict: bool = True, return_tensors: str | None = "pt",
                            return_assistant_tokens_mask: bool = False, encoders: Mapping[str, Any] | None = None,
                            **unused: Any):
        """Messages (one conversation, or a list of them) → model inputs, as transformers' processors do.

        Messages are ``{"role", "content"}`` with content a string or parts: ``{"type": "text", "text"}`` and
        one part per cue, ``{"type": "video", "path": "clip.mp4"}`` or ``{"type": "pose", "features": tensor}``
        (`llavidal_core.chat_messages`). A part given as a path is encoded by ``encoders[cue]``, else by this
        processor's ``cue_encoders`` (loaded by `load_cue_encoders`: the encoders the model records, as
        `LlavidalPipeline` loads them), so the result equals what the pipeline feeds the model.

        ``tokenize=False`` returns the prompt text (placeholders unexpanded); otherwise ``input_ids`` and
        ``attention_mask`` (left-padded with a generation prompt), ``cue_features`` / ``cue_feature_masks``,
        ``labels`` when the conversation ends with an answer, and ``assistant_masks`` (1 on answer tokens) with
        ``return_assistant_tokens_mask``; ``return_dict=False`` returns ``input_ids`` alone. Labels come from
        token spans, as in training. Only ``return_tensors="pt"`` is supported.

        Raises ValueError for malformed messages (naming the message and part) and for a cue part with a path
        but no encoder for its cue.
        """
        from llavidal_core.chat_messages import parse_messages

        if tokenize and return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors={return_tensors!r}: llavidal returns torch tensors ('pt')")
        batched = bool(conversation) and not isinstance(conversation[0], Mapping)
        conversations = list(conversation) if batched else [conversation]
        parsed = [parse_messages(messages, self.cues) for messages in conversations]
        if not tokenize:
            texts = [(self.inference_template if add_generation_prompt else self.template).render(
                item.turns, add_generation_prompt, item.system) for item in parsed]
            return texts if batched else texts[0]
        features = [self._cue_features_of(item.cue_inputs, encoders) for item in parsed]
        batch = self([item.turns for item in parsed], features, add_generation_prompt=add_generation_prompt,
                     systems=[item.system for item in parsed])
        if return_assistant_tokens_mask:
            if "labels" not in batch:
                raise ValueError("return_assistant_tokens_mask needs conversations that end with an answer")
            batch["assistant_masks"] = (batch["labels"] != IGNORE_INDEX).long()
        return batch if return_dict else batch["input_ids"]

    def _cue_features_of(self, cue_inputs: Mapping[str, Any], encoders: Mapping[str, Any] | None) -> dict[str, Any]:
        features = {}
        for cue, value in cue_inputs.items():
            if isinstance(value, (str, os.PathLike)):
                encoder = (encoders or {}).get(cue) or self.cue_encoders.get(cue)
                if encoder is None and not encoders and self.name_or_path is not None and not self.cue_encoders:
                    self.load_cue_encoders()
                    encoder = self.cue_encoders.get(cue)
                if encoder is None:
                    raise ValueError(f"the {cue!r} part gives a path ({value}) but there is no encoder for the {cue} "
                                     "cue: give its 'features', or encoders={cue: encoder}, or load the model's "
                                     "encoders with processor.load_cue_encoders(MODEL)")
                value = encoder.encode([value])[0]
            features[cue] = value
        return features

    def load_cue_encoders(self, model: str | os.PathLike | None = None, device: str = "cpu") -> dict[str, Any]:
        """Load the cue encoders a model records (its config's ``cue_encoders``; default: the folder or repo
        this processor was loaded from) through the installed plugins, into ``cue_encoders``. A cue whose
        encoder cannot be loaded is left out with a warning (its parts then need ``features``)."""
        import warnings

        from llavidal_core.errors import LlavidalError
        from llavidal_core.inference.pipeline import load_cue_encoder
        from llavidal_core.modeling import LlavidalConfig

        model = model if model is not None else self.name_or_path
        if model is None:
            raise ValueError("name the model whose encoders to load (this processor was not loaded from one)")
        for cue, record in dict(LlavidalConfig.from_pretrained(model).cue_encoders).items():
            try:
                self.cue_encoders[cue] = load_cue_encoder(cue, record, device, model)
            except LlavidalError as exc:
                warnings.warn(f"the model's {cue!r} encoder cannot be loaded ({exc}); give that cue's features",
                              stacklevel=2)
        return self.cue_encoders

    def batch_decode(self, *args, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    # -- saving and loading ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor_class": type(self).__name__,
            "cues": [spec.to_dict() for spec in self.cues],
            "use_start_end": self.use_start_end,
            "template": self.template.name,
            "inference_template": self.inference_template.name,
            "model_max_length": self.model_max_length,
            "tokenization": self.tokenization,
        }

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> list[str]:
        """Write the tokenizer files and ``processor_config.json`` (cues and templates) to ``save_directory``."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = list(self.tokenizer.save_pretrained(directory, **kwargs))
        config_file = directory / PROCESSOR_CONFIG_NAME
        config_file.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return [*files, str(config_file)]

    def push_to_hub(self, repo_id: str, **hub_kwargs) -> Any:
        """Upload the processor's files to ``repo_id`` in one commit (see `llavidal_core.hub.push_to_hub`)."""
        from llavidal_core.hub import push_to_hub

        return push_to_hub(lambda folder, _repo_id: self.save_pretrained(folder), repo_id,
                           commit_message="Upload llavidal processor", **hub_kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "LlavidalProcessor":
        """Load from a folder or Hub repo written by `save_pretrained` (kwargs go to the file lookups)."""
        from transformers import AutoTokenizer
        from transformers.utils import cached_file

        hub_kwargs = {key: kwargs[key] for key in ("cache_dir", "force_download", "local_files_only", "revision",
                                                   "token", "subfolder") if key in kwargs}
        config_file = cached_file(pretrained_model_name_or_path, PROCESSOR_CONFIG_NAME,
                                  _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if config_file is None:
            raise LlavidalError(f"{pretrained_model_name_or_path}: no {PROCESSOR_CONFIG_NAME} (not a llavidal processor)")
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        processor = cls(
            tokenizer,
            [CueSpec.from_dict(spec) for spec in config["cues"]],
            use_start_end=config["use_start_end"],
            template=config["template"],
            inference_template=config["inference_template"],
            model_max_length=config.get("model_max_length"),
            tokenization=config.get("tokenization", "native"),
        )
        processor.name_or_path = str(pretrained_model_name_or_path)
        return processor

    def _spec(self, cue: str) -> CueSpec:
        return self._specs[cue]


def sample_feature_tensors(index: int, features: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
    """One sample's ``{cue: features}`` as finite torch tensors (numpy arrays converted, None values left out).

    Raises:
        TypeError: a value that is neither a tensor nor a numpy array; `NonFiniteError`: NaN/inf values.
    """
    tensors = {}
    for cue, value in (features or {}).items():
        if value is None:
            continue
        what = f"sample {index}: cue {cue!r}: features"
        tensors[cue] = as_feature_tensor(value, what)
        check_finite(tensors[cue], what)
    return tensors


def tokenizer_adds_prefix_space(tokenizer: Any) -> bool:
    """Whether the tokenizer marks a word boundary before the first word itself (SentencePiece-style).

    Then ``"a"`` alone tokenizes like the ``" a"`` in ``"b a"``, and a segment's leading space is dropped
    before tokenizing it, so that segment boundaries tokenize as the words would in running text.
    """
    alone = tokenizer("a", add_special_tokens=False)["input_ids"]
    in_text = tokenizer("b a", add_special_tokens=False)["input_ids"]
    return in_text[-len(alone):] == alone and len(in_text) > len(alone)


import llavidal_core.modeling  # noqa: E402,F401 - registers the Auto classes (it imports this module's class)
