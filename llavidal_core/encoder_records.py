"""`EncoderRecord`: how a cue's features were made, precisely enough to make them again from raw input.

A cue encoder that can say how to rebuild itself (`llavidal_core.encoder.CueEncoder.encoder_record`) writes its
record with every feature it computes (feature-store metadata ``<cue>.encoder_record``, JSON). Training reads
the records of its feature folders (`records_in_store`: every file of a cue must hold the same one), copies the
encoder folders that live on this machine into the model folder (`EncoderRecord.bundle`) and saves the records
in the model's config (``cue_encoders``). Inference rebuilds exactly those encoders (`EncoderRecord.build`), so
a question about a new video is answered from features made as the training features were.

A record holds:

- ``pretrained``: what the cue's encoder factory's ``from_pretrained`` takes (a folder or a Hub id), or
  ``None`` when the factory is called with the options alone;
- ``options``: the keyword arguments that shape the features (frames and sampling, layer, pooling, model
  names, thresholds ...), JSON values only;
- ``model_options``: the option names whose values are model folders or Hub ids (copied with the model when
  they are folders here);
- ``dtype``: the dtype the encoder computed in (``float32``, ``bfloat16`` ...);
- ``bundled``: after `EncoderRecord.bundle`, the keys (``pretrained`` or option names) whose values are folders
  relative to the model folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from llavidal_core.errors import LlavidalError

logger = logging.getLogger(__name__)

RECORD_KEY = "encoder_record"
BUNDLE_FOLDER = "cue_encoders"
DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class EncoderRecord:
    """How to rebuild one cue's encoder: ``factory.from_pretrained(pretrained, **options)`` (module docstring)."""

    pretrained: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    model_options: tuple[str, ...] = ()
    dtype: str | None = None
    bundled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.pretrained is not None and not isinstance(self.pretrained, str):
            raise ValueError(f"an encoder record's pretrained must be a string, got {self.pretrained!r}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"an encoder record's options must be a JSON object, got {self.options!r}")
        try:
            json.dumps(dict(self.options))
        except TypeError as exc:
            raise ValueError(f"an encoder record's options must be JSON values: {exc}") from None
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"an encoder record's dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        object.__setattr__(self, "model_options", tuple(self.model_options))
        object.__setattr__(self, "bundled", tuple(self.bundled))
        for key in self.bundled:
            value = self._value(key)
            if value is None:
                raise ValueError(f"an encoder record bundles {key!r}, which it does not hold")
            parts = PurePosixPath(value).parts
            # a bundled folder lies inside the model's cue_encoders/ (a config must not point elsewhere on disk)
            if PurePosixPath(value).is_absolute() or not parts or parts[0] != BUNDLE_FOLDER or ".." in parts \
                    or "\\" in value:
                raise ValueError(f"an encoder record's bundled folder {value!r} is not inside {BUNDLE_FOLDER}/")

    # -- serialisation ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_options"] = list(self.model_options)
        data["bundled"] = list(self.bundled)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EncoderRecord":
        if not isinstance(data, Mapping):
            raise ValueError(f"an encoder record must be a JSON object, got {type(data).__name__}")
        known = {"pretrained", "options", "model_options", "dtype", "bundled"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"an encoder record has unknown fields {unknown} (was it written by a newer llavidal?)")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> "EncoderRecord":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_config_value(cls, value: str | Mapping[str, Any]) -> "EncoderRecord":
        """A model config's ``cue_encoders`` value: a record, or (older models) just an encoder id or folder."""
        if isinstance(value, str):
            return cls(pretrained=value)
        return cls.from_dict(value)

    # -- where the models are -----------------------------------------------------------------------------------

    def _value(self, key: str) -> str | None:
        value = self.pretrained if key == "pretrained" else self.options.get(key)
        return value if isinstance(value, str) else None

    def _with_value(self, key: str, value: str) -> "EncoderRecord":
        if key == "pretrained":
            return replace(self, pretrained=value)
        return replace(self, options={**self.options, key: value})

    def model_keys(self) -> tuple[str, ...]:
        """``pretrained`` (when set) and the option names that hold model folders or Hub ids."""
        keys = ("pretrained",) if self.pretrained is not None else ()
        return keys + tuple(k for k in self.model_options if self._value(k) is not None)

    def with_local_folders_absolute(self) -> "EncoderRecord":
        """The record with each model folder that exists here (``pretrained`` and the ``model_options``) as an
        absolute path, so that it is found from another working directory; Hub ids and bundled paths stay."""
        record = self
        for key in self.model_keys():
            if key not in self.bundled and Path(self._value(key)).expanduser().is_dir():
                record = record._with_value(key, str(Path(self._value(key)).expanduser().resolve()))
        return record

    def bundle(self, model_dir: str | Path, cue: str) -> "EncoderRecord":
        """Copy the record's model folders that exist here into ``model_dir/cue_encoders/<cue>/<key>`` and return
        the record pointing there (paths relative to ``model_dir``, listed in ``bundled``). Hub ids stay ids."""
        model_dir = Path(model_dir)
        record = self
        for key in self.model_keys():
            if key in self.bundled:
                continue
            source = Path(self._value(key)).expanduser()
            if not source.is_dir():
                continue
            relative = f"{BUNDLE_FOLDER}/{cue}/{key}"
            target = model_dir / relative
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))
            logger.info("cue %r: copied the encoder folder %s into %s", cue, source, target)
            record = replace(record._with_value(key, relative), bundled=(*record.bundled, key))
        return record

    def resolve(self, model_location: str | Path, **hub_kwargs: Any) -> "EncoderRecord":
        """The record with its bundled folders as paths on this machine: under ``model_location`` when it is a
        folder, else downloaded from that Hub repo (``hub_kwargs``: revision, token, cache_dir, ...)."""
        if not self.bundled:
            return self
        record = replace(self, bundled=())
        base = Path(model_location)
        for key in self.bundled:
            relative = self._value(key)
            if base.is_dir():
                folder = base / relative
            else:
                from huggingface_hub import snapshot_download

                hub = {k: v for k, v in hub_kwargs.items() if k in ("revision", "token", "cache_dir", "local_files_only")}
                folder = Path(snapshot_download(str(model_location), allow_patterns=[f"{relative}/*", f"{relative}/**"],
                                                **hub)) / relative
            if not folder.is_dir():
                raise LlavidalError(f"{model_location}: the model's encoder folder {relative} is missing "
                                    "(it was saved with the model; was the folder copied without it?)")
            record = record._with_value(key, str(folder))
        return record

    # -- building ------------------------------------------------------------------------------------------

    def build(self, factory: Any):
        """The encoder this record describes, from ``factory`` (a cue plugin's encoder class or callable), in eval
        mode and the recorded dtype, on the CPU."""
        import torch

        if self.pretrained is not None:
            if not hasattr(factory, "from_pretrained"):
                raise LlavidalError(f"{factory!r} cannot load {self.pretrained!r}: it has no from_pretrained")
            encoder = factory.from_pretrained(self.pretrained, **self.options)
        else:
            encoder = factory(**self.options)
        if self.dtype is not None:
            encoder = encoder.to(getattr(torch, self.dtype))
        return encoder.eval()

    def describe(self) -> str:
        """One line for messages: what the encoder is built from, and its options."""
        options = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"{self.pretrained or 'options only'}" + (f" ({options})" if options else "")


def records_in_store(store_root: str | Path, cue: str) -> tuple[EncoderRecord | None, dict | None]:
    """The one encoder record and spec (as dicts from the metadata) that every feature file of ``cue`` in the
    store at ``store_root`` holds: ``(None, None)`` when none holds one.

    Raises `LlavidalError` naming two files when their records differ (features from different encoders, or
    different settings, must not train one model), or when some files hold a record and others none.
    """
    from llavidal_core.features import FeatureStore

    store = FeatureStore(store_root, create=False)
    seen: dict[str, str] = {}
    unrecorded: str | None = None
    spec_text = None
    for video_id in sorted(store.video_ids()):
        if not store.has(video_id, cue):
            continue
        metadata = store.metadata(video_id, cue)
        text = metadata.get(RECORD_KEY)
        if text is None:
            unrecorded = unrecorded or video_id
            continue
        if text not in seen:
            seen[text] = video_id
            spec_text = spec_text or metadata.get("spec")
    if not seen:
        return None, None
    if len(seen) > 1:
        (first_text, first), (second_text, second) = list(seen.items())[:2]
        raise LlavidalError(
            f"{store_root}: the {cue!r} features of {first!r} and {second!r} were made by different encoders or "
            f"settings ({EncoderRecord.from_json(first_text).describe()} vs "
            f"{EncoderRecord.from_json(second_text).describe()}); one model trains on features made one way")
    if unrecorded is not None:
        raise LlavidalError(f"{store_root}: the {cue!r} features of {unrecorded!r} do not say how they were made, "
                            f"while those of {next(iter(seen.values()))!r} do; re-extract them into one folder")
    record = EncoderRecord.from_json(next(iter(seen)))
    return record, (json.loads(spec_text) if spec_text else None)
