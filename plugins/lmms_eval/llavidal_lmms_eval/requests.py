"""From an lmms-eval request to what `LlavidalPipeline` takes: each cue's input and the generation settings.

A request's ``args`` (lmms-eval 0.7.3, ``ConfigurableTask.construct_requests``):

- ``generate_until``: ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``;
- ``loglikelihood`` (also what ``multiple_choice`` tasks send, one request per choice):
  ``(context, continuation, doc_to_visual, doc_id, task, split)``, and only ``(context, continuation)`` for the
  unconditional requests of the ``acc_mutual_info`` metric;
- ``generate_until_multi_round``: ``(context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split)``.

``doc_to_visual(doc)`` gives the doc's visuals; video tasks give one video file path. That path is the
input of every cue of the model that reads video files (``video``, ``object``). A cue that reads something
else (``pose``: a skeleton file) takes the doc's field named after the cue, or the field that the model
argument ``cue_fields`` names for it (``cue_fields=pose:skeleton_path``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llavidal_core.errors import LlavidalError

# transformers ``generate`` keywords that lmms-eval tasks set and that are passed on as given
GENERATE_OPTIONS = ("num_beams", "top_k", "repetition_penalty", "length_penalty", "no_repeat_ngram_size")


def video_path(visuals: Any, where: str) -> str | None:
    """The one video file path among a doc's visuals (``doc_to_visual(doc)``), or None when it has none.

    ``where`` names the doc in errors (``"task/split doc 3"``). Raises `LlavidalError` for several visuals or
    for a visual that is not a path (an image, an audio array): llavidal's cues read one video file per sample.
    """
    if visuals is None:
        return None
    items = [visuals] if isinstance(visuals, (str, os.PathLike)) else list(visuals)
    items = [item for item in items if item is not None]
    if not items:
        return None
    if len(items) > 1:
        raise LlavidalError(f"{where}: {len(items)} visuals, but a llavidal model reads one video per sample")
    (item,) = items
    if not isinstance(item, (str, os.PathLike)):
        raise LlavidalError(f"{where}: a visual of type {type(item).__name__}; the llavidal model takes video "
                            f"file paths (doc_to_visual returning [path])")
    return os.fspath(item)


def parse_cue_fields(text: str | None) -> dict[str, str]:
    """``"pose:skeleton_path;object:boxes"`` -> ``{"pose": "skeleton_path", "object": "boxes"}``.

    lmms-eval splits ``--model_args`` at commas, hence ``;`` between pairs. Raises ``ValueError`` for a pair
    without ``:`` or with an empty side.
    """
    fields: dict[str, str] = {}
    for pair in (text or "").split(";"):
        if not pair.strip():
            continue
        cue, _, field = pair.partition(":")
        if not cue.strip() or not field.strip():
            raise ValueError(f"cue_fields: {pair!r} is not CUE:FIELD (pairs separated by ';')")
        fields[cue.strip()] = field.strip()
    return fields


def cue_inputs(video: str | None, doc: Mapping[str, Any] | None, cues: Sequence[str], video_cues: Iterable[str],
               cue_fields: Mapping[str, str]) -> dict[str, Any]:
    """Each cue's raw input for one doc: ``{cue: input}``, cues without an input left out.

    A field named in ``cue_fields`` is used for its cue whatever the cue reads; otherwise cues in ``video_cues``
    take ``video`` and the other cues the doc's field named after the cue, when present and not empty.
    """
    doc = doc or {}
    video_cues = set(video_cues)
    inputs: dict[str, Any] = {}
    for cue in cues:
        if cue in cue_fields:
            value = doc.get(cue_fields[cue])
        elif cue in video_cues:
            value = video
        else:
            value = doc.get(cue)
        if value is not None and value != "":
            inputs[cue] = value
    return inputs


def generation_settings(gen_kwargs: Mapping[str, Any] | None, default_max_new_tokens: int
                        ) -> tuple[dict[str, Any], list[str]]:
    """`LlavidalPipeline` settings for a task's ``gen_kwargs``, and the keys that were left out.

    ``until`` (a string or a list) becomes ``stop`` (empty strings dropped); ``max_new_tokens`` defaults to
    ``default_max_new_tokens``; sampling is on when ``do_sample`` says so or, without it, when
    ``temperature`` > 0 (lmms-eval's models read ``temperature: 0`` as greedy); ``top_p`` applies when
    sampling; `GENERATE_OPTIONS` pass through. Other keys (``image_aspect_ratio`` ...) are model-specific
    and returned in the second value. Raises ``ValueError`` for a non-positive ``max_new_tokens``.
    """
    gen_kwargs = dict(gen_kwargs or {})
    until = gen_kwargs.pop("until", None)
    stops = [until] if isinstance(until, str) else list(until or [])
    settings: dict[str, Any] = {"stop": tuple(stop for stop in stops if stop)}
    settings["max_new_tokens"] = int(gen_kwargs.pop("max_new_tokens", None) or default_max_new_tokens)
    if settings["max_new_tokens"] <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {settings['max_new_tokens']}")
    temperature = float(gen_kwargs.pop("temperature", 0.0) or 0.0)
    do_sample = bool(gen_kwargs.pop("do_sample", temperature > 0))
    top_p = gen_kwargs.pop("top_p", None)
    settings["do_sample"] = do_sample
    if do_sample:
        settings["temperature"] = temperature if temperature > 0 else 1.0
        if top_p is not None:
            settings["top_p"] = float(top_p)
    for name in GENERATE_OPTIONS:
        value = gen_kwargs.pop(name, None)
        if value is not None:
            settings[name] = value
    return settings, sorted(gen_kwargs)
