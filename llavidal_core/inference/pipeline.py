"""`LlavidalPipeline`: raw inputs (a video, a skeleton file, ...) and a question in, an answer out.

``LlavidalPipeline.from_pretrained(repo_or_dir)`` loads the model, its processor and, through the installed
plugins, the encoder of every cue the model was trained with (the encoder ids are recorded in the model's
config, ``cue_encoders``; pass ``encoders=`` to override). Calls take one sample or lists (batched,
left-padded generation), raw inputs or precomputed features, and decode greedily unless asked otherwise.
A cue whose input is not given for a sample is left out of that sample's prompt, with a warning.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from llavidal_core.devices import choose_device as default_device  # the GPU when there is one, else the CPU
from llavidal_core.devices import default_dtype
from llavidal_core.errors import LlavidalError, MissingPluginError
from llavidal_core.inference.stopping import (
    check_stop_strings,
    cut_at_stop_strings,
    hold_back_stop_strings,
    stop_string_criteria,
)
from llavidal_core.model_location import hub_failures_named, model_location


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded: greedy by default, so that the same question gives the same answer.

    ``options``: any other keyword of transformers' ``generate`` (``num_beams``, ``repetition_penalty``,
    ``num_return_sequences``, ``top_k`` ...), passed as given (transformers rejects unknown ones).
    ``generation_config``: a ``transformers.GenerationConfig``; the fields above then override it only where
    they differ from their defaults.
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    generation_config: Any = None

    FIELDS = ("max_new_tokens", "do_sample", "temperature", "top_p")

    def with_overrides(self, **settings: Any) -> "GenerationSettings":
        """These settings with ``settings`` applied: fields by name, ``stop`` as a tuple, ``generation_config``,
        and any other ``generate`` keyword into ``options``."""
        known = {key: value for key, value in settings.items() if key in (*self.FIELDS, "stop", "generation_config")}
        if "stop" in known:
            known["stop"] = (known["stop"],) if isinstance(known["stop"], str) else tuple(known["stop"])
        extra = {key: value for key, value in settings.items() if key not in known}
        return replace(self, **known, options={**self.options, **extra})

    @property
    def num_return_sequences(self) -> int:
        """Answers per question (``num_return_sequences``, from the options or the generation config)."""
        if "num_return_sequences" in self.options:
            return int(self.options["num_return_sequences"])
        return int(getattr(self.generation_config, "num_return_sequences", None) or 1)

    def generate_kwargs(self) -> dict[str, Any]:
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")
        check_stop_strings(self.stop)
        defaults = GenerationSettings()
        chosen = {name: getattr(self, name) for name in self.FIELDS}
        if self.generation_config is not None:  # the config decides what was not set here
            chosen = {name: value for name, value in chosen.items() if value != getattr(defaults, name)}
        elif not self.do_sample:
            chosen.pop("temperature")
            chosen.pop("top_p")
        kwargs: dict[str, Any] = {**chosen, **self.options}
        if self.generation_config is not None:
            kwargs["generation_config"] = self.generation_config
        return kwargs


def load_cue_encoder(cue: str, encoder: Any, device: str | torch.device, model_id: str | Path | None = None,
                     **hub_kwargs: Any):
    """An encoder instance for ``cue`` on ``device``: ``encoder`` itself when it is a module, else built through
    the cue's plugin from an encoder record (a model config's ``cue_encoders`` value, whose bundled folders
    are found under ``model_id``) or from an id or folder (``encoder=`` overrides: the encoder's own defaults).

    Raises `MissingPluginError` when no installed plugin provides the cue's encoder, and `LlavidalError`
    naming the cue and the record when the encoder cannot be built.
    """
    from llavidal_core.encoder_records import EncoderRecord
    from llavidal_core.plugins import get_plugin_manager

    if isinstance(encoder, torch.nn.Module):
        return encoder.to(device).eval()
    factory = get_plugin_manager().cue(cue).encoder_factory()
    try:
        record = EncoderRecord(pretrained=str(encoder)) if isinstance(encoder, (str, Path)) \
            else EncoderRecord.from_config_value(encoder)
    except ValueError as exc:
        raise LlavidalError(f"cue {cue!r}: the model's encoder record is not valid: {exc}") from None
    if model_id is not None:
        record = record.resolve(model_id, **hub_kwargs)
    try:
        built = record.build(factory)
    except MissingPluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a plugin raises, name the cue and the record
        raise LlavidalError(f"cue {cue!r}: cannot build its encoder from {record.describe()}: "
                            f"{type(exc).__name__}: {exc}") from exc
    return built.to(device)


class LlavidalPipeline:
    def __init__(self, model, processor, encoders: Mapping[str, Any] | None = None,
                 settings: GenerationSettings | None = None):
        self.model = model.eval()
        self.processor = processor
        self.encoders = dict(encoders or {})
        self.settings = settings or GenerationSettings()
        self.cue_names = tuple(spec.name for spec in processor.cues)
        self.encoder_calls = 0  # how many times a cue encoder ran (chat reuses features)
        self.encoder_errors: dict[str, str] = {}  # cue -> why its recorded encoder could not be loaded

    @classmethod
    def from_pretrained(cls, model_id: str | Path, *, device: str | None = None, dtype: torch.dtype | str | None = None,
                        encoders: Mapping[str, Any] | None = None, load_encoders: bool = True,
                        **hub_kwargs) -> "LlavidalPipeline":
        """Load a llavidal model folder or Hub repo, its processor, and its cue encoders.

        The model's config records how each cue's training features were made (``cue_encoders``, see
        `llavidal_core.encoder_records`); those encoders are rebuilt, in the recorded settings and dtype, so
        features computed here equal the training features. ``encoders`` maps a cue to an encoder id, path or
        instance that overrides the record. A recorded encoder whose plugin is not installed is reported
        (a warning) and its cue then needs precomputed features. With ``load_encoders=False`` only
        precomputed features can be used.

        Raises `LlavidalError`: "no such model folder" for a ``model_id`` that can only be a path and does not
        exist (`llavidal_core.model_location`), or a Hub id that is neither a folder here nor loadable.
        """
        from llavidal_core.modeling import LlavidalForConditionalGeneration
        from llavidal_core.processing import LlavidalProcessor

        model_id = model_location(model_id)
        device = device or default_device()
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or default_dtype(device))
        with hub_failures_named(model_id):
            model = LlavidalForConditionalGeneration.from_pretrained(model_id, dtype=dtype, **hub_kwargs).to(device)
        processor = LlavidalProcessor.from_pretrained(model_id, **hub_kwargs)
        chosen = dict(model.config.cue_encoders) | dict(encoders or {})
        unknown = sorted(set(chosen) - set(model.config.cue_names))
        if unknown:
            raise LlavidalError(f"encoders given for cues {unknown} that the model {model_id} does not have "
                                f"(its cues: {list(model.config.cue_names)})")
        loaded, errors = {}, {}
        if load_encoders:
            for cue, encoder in chosen.items():
                try:
                    loaded[cue] = load_cue_encoder(cue, encoder, device, model_id if cue not in (encoders or {})
                                                   else None, **hub_kwargs)
                except LlavidalError as exc:  # a missing plugin or folder: precomputed features still work
                    errors[cue] = str(exc)
                    warnings.warn(f"the model's {cue!r} encoder cannot be loaded ({exc}); give that cue's features",
                                  stacklevel=2)
        pipeline = cls(model, processor, loaded)
        pipeline.encoder_errors = errors
        processor.cue_encoders = dict(loaded)  # processor.apply_chat_template encodes cue parts given as paths with them
        return pipeline

    # -- features --------------------------------------------------------------------------------------------

    def compute_features(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, torch.Tensor]]:
        """Each sample's features, running each cue's encoder once over all samples that have that cue."""
        per_sample: list[dict[str, torch.Tensor]] = [{} for _ in inputs]
        unknown = sorted({cue for sample in inputs for cue in sample} - set(self.cue_names))
        if unknown:
            raise LlavidalError(f"inputs given for cues {unknown} that the model does not have "
                                f"(its cues: {list(self.cue_names)})")
        for cue in self.cue_names:
            indices = [i for i, sample in enumerate(inputs) if sample.get(cue) is not None]
            if not indices:
                continue
            if cue not in self.encoders:
                why = self.encoder_errors.get(cue, "the model does not record how its features were made")
                raise MissingPluginError(
                    f"no encoder is loaded for the cue {cue!r} ({why}); give one (command line: --encoder "
                    f"{cue}=ID; Python: encoders={{{cue!r}: ID}}) or precomputed features (--features FILE; "
                    f"features={{{cue!r}: tensor}})"
                )
            raws = [inputs[i][cue] for i in indices]
            for raw in raws:
                if isinstance(raw, (str, Path)) and not Path(raw).exists():
                    raise LlavidalError(f"{raw}: no such file (input of the {cue!r} cue)")
            with torch.no_grad():
                encoded = self.encoders[cue].encode(raws)
            self.encoder_calls += 1
            for i, features in zip(indices, encoded):
                per_sample[i][cue] = features
        return per_sample

    def video_cues(self) -> tuple[str, ...]:
        """The model's cues whose loaded encoder reads video files (``video`` and ``object``), plus ``video``
        itself when the model has it."""
        return tuple(cue for cue in self.cue_names
                     if cue == "video" or getattr(self.encoders.get(cue), "reads_video_files", False))

    def _check_features(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unknown = sorted(set(features) - set(self.cue_names))
        if unknown:
            raise LlavidalError(f"inputs or features given for cues {unknown} that the model does not have "
                                f"(its cues: {list(self.cue_names)})")
        return {cue: tensor.reshape(-1, tensor.shape[-1]) for cue, tensor in features.items()}

    def _warn_missing(self, features_list: Sequence[Mapping[str, torch.Tensor]]) -> None:
        for index, features in enumerate(features_list):
            missing = [cue for cue in self.cue_names if cue not in features]
            if missing:
                warnings.warn(f"sample {index}: no input for the cue(s) {missing}; they are left out of its prompt",
                              stacklevel=3)

    # -- prompts and generation ----------------------------------------------------------------------------

    def user_message(self, question: str, features: Mapping[str, torch.Tensor]) -> str:
        """The question followed by the placeholders of the cues present, as LLAVIDAL's inference writes it."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("the question is empty")
        placeholders = "".join(spec.placeholder for spec in self.processor.cues if spec.name in features)
        return f"{question.strip()}\n{placeholders}" if placeholders else question.strip()

    def _prepare(self, conversations, features_list):
        batch = self.processor(conversations, features_list, add_generation_prompt=True)
        parameter = next(self.model.parameters())
        return {
            "input_ids": batch["input_ids"].to(parameter.device),
            "attention_mask": batch["attention_mask"].to(parameter.device),
            "cue_features": {c: t.to(parameter.device, parameter.dtype) for c, t in batch["cue_features"].items()},
            "cue_feature_masks": {c: t.to(parameter.device) for c, t in batch["cue_feature_masks"].items()},
        }

    def _generate_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        """`GenerationSettings.generate_kwargs`, plus padding, end of answer and transformers' stop-string criterion."""
        tokenizer = self.processor.tokenizer
        kwargs = settings.generate_kwargs()
        pad = tokenizer.pad_token_id
        kwargs["pad_token_id"] = pad if pad is not None else tokenizer.eos_token_id
        if self.model.generation_config.eos_token_id is None and tokenizer.eos_token_id is not None:
            kwargs["eos_token_id"] = tokenizer.eos_token_id
        kwargs["stopping_criteria"] = stop_string_criteria(tokenizer, settings.stop)
        return kwargs

    def generate_answers(self, conversations: Sequence[Sequence[Mapping[str, str]]],
                         features_list: Sequence[Mapping[str, torch.Tensor]],
                         settings: GenerationSettings | None = None) -> list[str]:
        """Answer the last user turn of each conversation, in one left-padded batch.

        Each answer is cut before the first of ``settings.stop`` it holds (`cut_at_stop_strings`), exactly as
        `stream_answer` cuts it.
        """
        settings = settings or self.settings
        inputs = self._prepare(conversations, features_list)
        prompt_length = inputs["input_ids"].shape[1]
        with torch.no_grad():
            output = self.model.generate(**inputs, **self._generate_kwargs(settings))
        texts = self.processor.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        answers = [cut_at_stop_strings(text, settings.stop).strip() for text in texts]
        per_question = settings.num_return_sequences
        if per_question > 1:  # generate returns the sequences of one question next to each other
            return [answers[i:i + per_question] for i in range(0, len(answers), per_question)]
        return answers

    def stream_answer(self, conversation: Sequence[Mapping[str, str]], features: Mapping[str, torch.Tensor],
                      settings: GenerationSettings | None = None) -> Iterator[str]:
        """Yield the answer to one conversation piece by piece as it is generated.

        Text that could begin a stop string is held back until it is known not to; the pieces joined and
        stripped equal `generate_answers`' answer.
        """
        from transformers import TextIteratorStreamer

        settings = settings or self.settings
        inputs = self._prepare([conversation], [features])
        generate_kwargs = self._generate_kwargs(settings)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run():
            try:
                with torch.no_grad():
                    self.model.generate(**inputs, **generate_kwargs, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from hold_back_stop_strings(streamer, settings.stop)
        thread.join()
        if errors:
            raise errors[0]

    # -- the user-facing call ---------------------------------------------------------------------------------

    def _samples(self, video, inputs, features) -> tuple[list[dict[str, torch.Tensor]], bool]:
        """Per-sample features from ``video=`` / ``inputs=`` / ``features=``, and whether one sample was given."""
        single = not isinstance(video, (list, tuple)) and not isinstance(inputs, (list, tuple)) \
            and not isinstance(features, (list, tuple))
        videos = list(video) if isinstance(video, (list, tuple)) else ([video] if video is not None else [])
        input_list = list(inputs) if isinstance(inputs, (list, tuple)) else ([inputs] if inputs is not None else [])
        feature_list = list(features) if isinstance(features, (list, tuple)) else (
            [features] if features is not None else [])
        count = max(len(videos), len(input_list), len(feature_list), 1)
        for name, values in (("video", videos), ("inputs", input_list), ("features", feature_list)):
            if values and len(values) != count:
                raise ValueError(f"{name} has {len(values)} entries but the batch has {count} samples")
        for name, values in (("inputs", input_list), ("features", feature_list)):
            if not all(isinstance(value, Mapping) for value in values):
                raise ValueError(f"{name} must be a {{cue: ...}} dict per sample, e.g. {name}={{'video': ...}}, "
                                 f"or a list of such dicts")
        raw = [dict(input_list[i]) if input_list else {} for i in range(count)]
        if videos and not self.video_cues():
            raise LlavidalError(f"a video was given but no cue of the model reads videos (its cues: "
                                f"{list(self.cue_names)}); give each cue's input or features")
        for i, path in enumerate(videos):  # every cue that reads video files computes its features from it
            for cue in self.video_cues():
                raw[i].setdefault(cue, path)
        for i in range(count):  # precomputed features are not computed again
            for cue in (feature_list[i] if feature_list else {}):
                raw[i].pop(cue, None)
        computed = self.compute_features(raw) if any(raw) else [{} for _ in range(count)]
        for i in range(count):
            if feature_list:
                computed[i].update(feature_list[i])
            computed[i] = self._check_features(computed[i])
        return computed, single

    def __call__(self, video=None, question: str | Sequence[str] | None = None, *, inputs=None, features=None,
                 stream: bool = False, **settings: Any):
        """Answer ``question`` about ``video`` (and any other cue's ``inputs``, or precomputed ``features``).

        Lists of videos / inputs / features / questions are answered as one batch (a single question is
        asked of every sample); the result is then a list. ``stream=True`` (one sample) returns an iterator of
        text pieces. ``settings`` are `GenerationSettings` fields (``max_new_tokens``, ``do_sample``,
        ``temperature``, ``top_p``, ``stop``, ``generation_config``) or any other keyword of transformers'
        ``generate`` (``num_beams=3``, ``repetition_penalty=1.2`` ...). With ``num_return_sequences=n`` > 1 each
        sample's answer is a list of ``n`` answers.
        """
        if question is None:
            raise ValueError("the question is empty")
        generation = self.settings.with_overrides(**settings)
        features_list, single = self._samples(video, inputs, features)
        questions = [question] * len(features_list) if isinstance(question, str) else list(question)
        if len(questions) != len(features_list):
            raise ValueError(f"{len(questions)} questions for {len(features_list)} samples")
        if isinstance(question, (list, tuple)):
            single = False
        self._warn_missing(features_list)
        conversations = [[{"from": "human", "value": self.user_message(q, f)}]
                         for q, f in zip(questions, features_list)]
        if stream:
            if len(conversations) != 1:
                raise ValueError("stream=True answers one sample at a time")
            return self.stream_answer(conversations[0], features_list[0], generation)
        answers = self.generate_answers(conversations, features_list, generation)
        return answers[0] if single else answers

    def chat(self, video=None, *, inputs: Mapping[str, Any] | None = None,
             features: Mapping[str, torch.Tensor] | None = None):
        """A multi-turn conversation about one sample; its features are computed once."""
        from llavidal_core.inference.chat import ChatSession

        return ChatSession(self, video=video, inputs=inputs, features=features)
