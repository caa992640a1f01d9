"""Hub I/O around the fusion model: the generated model card and `push_to_hub`.

The card (``README.md``, written on every ``save_pretrained`` / ``save_adapter``) is a
`huggingface_hub.ModelCard`: its metadata has ``pipeline_tag: video-text-to-text``, ``library_name: llavidal``,
the tags ``llavidal``, ``video-text-to-text`` and ``cue-<name>`` per cue, ``base_model`` when the base LM is a
Hub id (a local folder is left out), ``license`` when one is given or the base LM's own card states one (read
from the base folder or the local Hub cache, never downloaded), ``datasets`` when given, and ``model-index``
results from ``llavidal eval mcq --out`` reports (`eval_results_from_report`). Its text lists the cues, the
``pip install`` line of each cue's plugin (from each `CueSpec`'s ``distribution``), a Python snippet and the
``llavidal ask`` line that answer a question about a video.

`update_model_card` rewrites the card of a saved model folder, keeping the license, datasets and results an
earlier card recorded (``llavidal card MODEL --eval report.json``). `push_to_hub` saves the model (and the
processor, when given) into a temporary folder and uploads it in one commit through `huggingface_hub.HfApi`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llavidal_core.cues import CueSpec
from llavidal_core.errors import UsageError

CORE_DISTRIBUTION = "llavidal-core"
MODEL_CARD_NAME = "README.md"
LIBRARY_NAME = "llavidal"
PIPELINE_TAG = "video-text-to-text"
CUE_TAG_PREFIX = "cue-"
EVAL_TASK_TYPE = "video-text-to-text"
EVAL_TASK_NAME = "Multiple-choice video question answering"
EXAMPLE_QUESTION = "What is the person doing?"
EXAMPLE_VIDEO = "clip.mp4"
VIDEO_FILE_CUES = ("video", "object")  # cues whose encoders read the video file itself
EXAMPLE_INPUTS = {"pose": "clip.skeleton"}  # other cues' example inputs (default: clip.<cue>)
ADAPTER_WEIGHTS_NAME = "adapter.safetensors"
PROCESSOR_FILE = "processor_config.json"
LORA_FOLDER = "lora"  # an adapter's PEFT LoRA folder (`llavidal_core.modeling.adapter`)


class ModelCardError(UsageError, ValueError):
    """A card option that cannot go into the metadata (a dataset that is no Hub id, a broken report)."""


# -- metadata helpers ---------------------------------------------------------------------------------------------


def hub_model_id(name: Any) -> str | None:
    """``name`` when it is a Hub repo id ``namespace/name``, else None.

    None for an empty value, an existing local path, anything that can only be a path
    (`llavidal_core.model_location.looks_like_path`: ``./x``, ``/abs``, ``tiny/llm`` with a ``tiny`` folder
    here), and what huggingface_hub's `validate_repo_id` refuses; a bare ``name`` without a namespace is not
    taken either (it is more often a folder that has since moved than a legacy canonical id).
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from llavidal_core.model_location import looks_like_path

    if not name:
        return None
    text = str(name)
    if text.count("/") != 1 or Path(os.path.expanduser(text)).exists() or looks_like_path(text):
        return None
    try:
        validate_repo_id(text)
    except HFValidationError:
        return None
    return text


def _card_path_of(base: str) -> Path | None:
    """The base LM's ``README.md`` on this machine: in its folder, or in the local Hub cache (no download)."""
    folder = Path(os.path.expanduser(base))
    if folder.is_dir():
        card = folder / MODEL_CARD_NAME
        return card if card.is_file() else None
    repo_id = hub_model_id(base)
    if repo_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, MODEL_CARD_NAME)
    except Exception:  # a malformed cache is no reason to fail a save
        return None
    return Path(cached) if isinstance(cached, (str, os.PathLike)) else None


def base_model_license(base: Any) -> dict[str, str] | None:
    """The license fields (``license``, and ``license_name`` / ``license_link`` for ``other``) that the base
    LM's own model card states, when that card is on this machine; None otherwise (nothing is downloaded)."""
    if not base:
        return None
    path = _card_path_of(str(base))
    if path is None:
        return None
    from huggingface_hub import ModelCard

    try:
        data = ModelCard.load(path, ignore_metadata_errors=True).data
    except Exception:  # a card that does not parse states nothing
        return None
    if not data.license:
        return None
    return {key: data.get(key) for key in ("license", "license_name", "license_link") if data.get(key)}


DATA_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".txt", ".yaml", ".yml", ".pkl",
                      ".pt", ".safetensors", ".zip", ".tar", ".gz", ".mp4")


def dataset_ids(datasets: str | Iterable[str] | None) -> list[str] | None:
    """``datasets`` as Hub dataset ids (``name`` or ``namespace/name``, per huggingface_hub's `validate_repo_id`).

    Raises `ModelCardError` for a local path: one that exists here, can only be a path, or names a data file
    (``data/train.json``), since the card's ``datasets`` link to hf.co/datasets.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from llavidal_core.model_location import looks_like_path

    if datasets is None:
        return None
    values = [datasets] if isinstance(datasets, str) else list(datasets)
    for value in values:
        why = None
        try:
            validate_repo_id(value)
        except HFValidationError as exc:
            why = str(exc)
        if why is None and (Path(os.path.expanduser(value)).exists() or looks_like_path(value)):
            why = "it is a local path"
        if why is None and value.lower().endswith(DATA_FILE_SUFFIXES):
            why = "it names a data file"
        if why is not None:
            raise ModelCardError(f"dataset {value!r}: the card's datasets are Hub dataset ids (namespace/name), "
                                 f"not files or folders ({why})")
    return list(dict.fromkeys(values)) or None


def plugin_install_lines(cues: Sequence[CueSpec]) -> list[str]:
    """``pip install`` lines: the core, then each distinct plugin distribution (``>=`` its recorded version)."""
    lines = [f"pip install {CORE_DISTRIBUTION}"]
    seen = {CORE_DISTRIBUTION}
    for spec in cues:
        if spec.distribution is None or spec.distribution in seen:
            continue
        seen.add(spec.distribution)
        requirement = f'"{spec.distribution}>={spec.version}"' if spec.version else spec.distribution
        lines.append(f"pip install {requirement}")
    return lines


# -- evaluation reports -> model-index ----------------------------------------------------------------------------


def _load_report(report: Mapping[str, Any] | str | os.PathLike) -> tuple[dict, str]:
    if isinstance(report, Mapping):
        return dict(report), "the report"
    path = Path(report)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelCardError(f"{path}: no such evaluation report") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"{path}: not an evaluation report ({exc})") from None
    if not isinstance(loaded, dict):
        raise ModelCardError(f"{path}: not an evaluation report (a JSON object from `llavidal eval mcq --out`)")
    return loaded, str(path)


def eval_results_from_report(report: Mapping[str, Any] | str | os.PathLike,
                             dataset_types: Mapping[str, str] | None = None) -> list[Any]:
    """`huggingface_hub.EvalResult` entries, one per questions file, from a ``llavidal eval mcq --out`` report.

    The report holds ``accuracy``: ``{task: {"accuracy", "ci95": [low, high], "n"}}`` (a task is a questions
    file's name without ``.json``; ``overall`` is added when there are several files and is left out here, as
    it is no one dataset), ``mode`` (``loglik`` / ``generate``) and ``normalize``. Each entry: task type
    ``video-text-to-text`` ("Multiple-choice video question answering"), dataset name and type the task (or
    ``dataset_types[task]``, e.g. a Hub dataset id), metric ``accuracy`` with the value, its configuration the
    scoring mode (``loglik-mean``, ``generate``) and its name the 95% CI and the number of questions.

    Raises `ModelCardError` for a file that is not such a report or that has no accuracy.
    """
    from huggingface_hub import EvalResult

    data, where = _load_report(report)
    accuracies = data.get("accuracy")
    if not isinstance(accuracies, Mapping) or not accuracies:
        raise ModelCardError(f"{where}: no accuracy in it (is it the --out report of `llavidal eval mcq`?)")
    mode = data.get("mode") or "loglik"
    config = f"{mode}-{data['normalize']}" if mode == "loglik" and data.get("normalize") else str(mode)
    results = []
    for task, values in accuracies.items():
        if task == "overall" and len(accuracies) > 1:
            continue
        try:
            value = float(values["accuracy"])
            low, high = (float(bound) for bound in values["ci95"])
            count = int(values["n"])
        except (KeyError, TypeError, ValueError):
            raise ModelCardError(f"{where}: accuracy of {task!r} is not {{accuracy, ci95: [low, high], n}}: "
                                 f"{values!r}") from None
        results.append(EvalResult(
            task_type=EVAL_TASK_TYPE, task_name=EVAL_TASK_NAME,
            dataset_type=(dataset_types or {}).get(task, task), dataset_name=task,
            metric_type="accuracy", metric_value=round(value, 4), metric_config=config,
            metric_name=f"Accuracy (95% CI {low:.3f}-{high:.3f}, n={count})",
        ))
    return results


def _result_key(result: Any) -> tuple:
    return (result.task_type, result.dataset_type, result.dataset_name, result.dataset_config,
            result.dataset_split, result.metric_type, result.metric_config)


def merge_eval_results(old: Sequence[Any] | None, new: Sequence[Any] | None) -> list[Any]:
    """``old`` with each result that ``new`` measures again (same task, dataset, metric, scoring) replaced."""
    merged = {_result_key(result): result for result in old or ()}
    merged.update({_result_key(result): result for result in new or ()})
    return list(merged.values())


# -- the card -------------------------------------------------------------------------------------------------------


def _example_inputs(cues: Sequence[CueSpec]) -> tuple[bool, dict[str, str]]:
    """Whether the example passes a video, and the other cues' example input files."""
    names = [spec.name for spec in cues]
    with_video = any(name in VIDEO_FILE_CUES for name in names)
    others = {name: EXAMPLE_INPUTS.get(name, f"clip.{name}") for name in names if name not in VIDEO_FILE_CUES}
    return with_video, others


def _usage_lines(cues: Sequence[CueSpec], where: str, adapter_only: bool, has_processor: bool,
                 has_lora: bool = False) -> list[str]:
    with_video, others = _example_inputs(cues)
    if adapter_only:
        processor_source = where if has_processor else "path/to/processor"
        held = "projectors, cue-token rows and, in `lora/`, a LoRA of the LM" if has_lora else \
            "projectors and cue-token rows"
        return [
            "## Ask a question about a video",
            "",
            f"This repository holds only the adapter ({held}); it loads onto the base LM it names. Ask with "
            "precomputed features (`llavidal extract CUE ...`), or save the loaded model with `save_pretrained` "
            "and use that folder as a full model.",
            "",
            "```python",
            "from llavidal_core.features import FeatureStore",
            "from llavidal_core.inference import LlavidalPipeline",
            "from llavidal_core.modeling import LlavidalForConditionalGeneration, LlavidalProcessor",
            "",
            f'model = LlavidalForConditionalGeneration.from_adapter("{where}")  # onto the base LM it names',
            f'pipe = LlavidalPipeline(model, LlavidalProcessor.from_pretrained("{processor_source}"))',
            'features = FeatureStore("features", create=False).read_all("clip")  # from `llavidal extract`',
            f'print(pipe(features=features, question="{EXAMPLE_QUESTION}"))',
            "```",
            "",
        ]
    arguments = [f'video="{EXAMPLE_VIDEO}"'] if with_video else []
    if others:
        arguments.append("inputs={" + ", ".join(f'"{cue}": "{path}"' for cue, path in others.items()) + "}")
    arguments.append(f'question="{EXAMPLE_QUESTION}"')
    command = f"llavidal ask {where}" + (f" {EXAMPLE_VIDEO}" if with_video else "") + f' "{EXAMPLE_QUESTION}"'
    command += "".join(f" --input {cue}={path}" for cue, path in others.items())
    return [
        "## Ask a question about a video",
        "",
        "```python",
        "from llavidal_core.inference import LlavidalPipeline",
        "",
        f'pipe = LlavidalPipeline.from_pretrained("{where}")',
        f"print(pipe({', '.join(arguments)}))",
        "```",
        "",
        "The pipeline computes each cue's features with the encoders the model records, as its training "
        "features were made (each cue's plugin must be installed); `features={cue: tensor}` gives precomputed "
        "ones instead. From the command line:",
        "",
        "```bash",
        command,
        "```",
        "",
    ]


def _evaluation_lines(results: Sequence[Any]) -> list[str]:
    if not results:
        return []
    lines = ["## Evaluation", "", "| dataset | accuracy | scoring | details |", "|---|---:|---|---|"]
    for result in results:
        lines.append(f"| {result.dataset_name} | {result.metric_value:.3f} | {result.metric_config or '-'} | "
                     f"{result.metric_name or '-'} |")
    lines += ["", "Scored with `llavidal eval mcq`; the same numbers are in the card's `model-index`.", ""]
    return lines


def _license_lines(license_fields: Mapping[str, str] | None, from_base: bool) -> list[str]:
    lines = ["## License", ""]
    if not license_fields:
        return lines + ["No license is recorded for this model: check the license of the base LM, whose weights "
                        "it derives from. Set one with `llavidal card MODEL --license ID` (a Hub license id).", ""]
    name = license_fields.get("license_name") or license_fields["license"]
    link = license_fields.get("license_link")
    shown = f"[`{name}`]({link})" if link else f"`{name}`"
    if from_base:
        return lines + [f"{shown}: the license the base LM's model card states, which the weights derive from "
                        "(no license was given for this model; set one with `llavidal card MODEL --license ID`).",
                        ""]
    return lines + [f"{shown}.", ""]


def model_card(config: Any, repo_id: str | None = None, adapter_only: bool = False, *,
               license: str | None = None, license_name: str | None = None, license_link: str | None = None,
               datasets: str | Iterable[str] | None = None, eval_results: Sequence[Any] | None = None,
               eval_report: Mapping[str, Any] | str | os.PathLike | None = None, model_name: str | None = None,
               has_processor: bool = True, has_lora: bool = False) -> Any:
    """The `huggingface_hub.ModelCard` of a llavidal model (``config`` is a `LlavidalConfig`).

    ``license``: a Hub license id; without it, the license the base LM's card states when that card is on this
    machine, else none (the card then says so). ``datasets``: Hub dataset ids. ``eval_results`` and
    ``eval_report`` (a ``llavidal eval mcq --out`` report, see `eval_results_from_report`) fill
    ``model-index``, whose name is ``model_name`` (default: ``repo_id``, else "llavidal-model").
    """
    from huggingface_hub import ModelCard, ModelCardData

    cues = list(config.cue_specs)
    text_config = config.text_config
    base = config.base_model_name_or_path
    base_id = hub_model_id(base)
    from_base = False
    if license is not None:
        license_fields = {"license": license, "license_name": license_name, "license_link": license_link}
        license_fields = {key: value for key, value in license_fields.items() if value}
    else:
        license_fields = base_model_license(base)
        from_base = license_fields is not None
    results = merge_eval_results(eval_results, eval_results_from_report(eval_report) if eval_report else None)
    extra = {"base_model_relation": "adapter"} if adapter_only and base_id else {}
    data = ModelCardData(
        pipeline_tag=PIPELINE_TAG,
        library_name=LIBRARY_NAME,
        base_model=base_id,
        datasets=dataset_ids(datasets),
        tags=[LIBRARY_NAME, PIPELINE_TAG, *(f"{CUE_TAG_PREFIX}{spec.name}" for spec in cues)],
        eval_results=results or None,
        model_name=model_name or repo_id or ("llavidal-model" if results else None),
        metrics=["accuracy"] if results else None,
        **(license_fields or {}),
        **extra,
    )
    title = repo_id or model_name or "llavidal model"
    what = ("a llavidal adapter: the projectors and cue-token embedding rows that fuse" if adapter_only
            else "a llavidal model:")
    if base_id:
        base_text = f" Base LM: [`{base_id}`](https://huggingface.co/{base_id})."
    elif base:
        base_text = f" Base LM: `{base}` (a local path, not a Hub id: left out of the card's `base_model`)."
    else:
        base_text = ""
    lines = [
        "",
        f"# {title}",
        "",
        f"This is {what} a {text_config.model_type} causal LM (hidden size {text_config.hidden_size}, "
        f"vocabulary {text_config.vocab_size}) with {len(cues)} cue{'s' if len(cues) != 1 else ''}." + base_text,
        "",
        "| cue | placeholder | rows | feature dim | projector | plugin |",
        "|---|---|---|---|---|---|",
    ]
    for spec in cues:
        rows = str(spec.num_tokens) if spec.num_tokens is not None else f"{spec.tokens_per_item} per item"
        lines.append(f"| {spec.name} | `{spec.placeholder}` | {rows} | {spec.feature_dim} | {spec.projector} | "
                     f"{spec.distribution or '-'} |")
    lines += ["", "## Install", "", "```bash", *plugin_install_lines(cues), "```", "",
              "The cue plugins compute features from raw inputs; a model loads and runs on precomputed features "
              "without them.", ""]
    lines += _usage_lines(cues, repo_id or "path/to/model", adapter_only, has_processor, has_lora)
    lines += _evaluation_lines(results)
    lines += _license_lines(license_fields, from_base)
    if data.datasets:
        lines += ["## Training data", "", ", ".join(f"[`{d}`](https://huggingface.co/datasets/{d})"
                                                   for d in data.datasets), ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines))


def model_card_text(config: Any, repo_id: str | None = None, adapter_only: bool = False, **options: Any) -> str:
    """The model card of a llavidal model as Markdown with its YAML metadata (see `model_card`)."""
    return str(model_card(config, repo_id, adapter_only, **options))


def write_model_card(config: Any, directory: str | os.PathLike, repo_id: str | None = None,
                     adapter_only: bool = False, **options: Any) -> Path:
    """Write ``directory/README.md`` (see `model_card`; ``options`` are its keyword arguments)."""
    path = Path(directory) / MODEL_CARD_NAME
    options.setdefault("has_processor", (Path(directory) / PROCESSOR_FILE).is_file())
    options.setdefault("has_lora", (Path(directory) / LORA_FOLDER / "adapter_config.json").is_file())
    model_card(config, repo_id, adapter_only, **options).save(path)
    return path


def update_model_card(directory: str | os.PathLike, *, repo_id: str | None = None, license: str | None = None,
                      datasets: str | Iterable[str] | None = None,
                      eval_reports: Sequence[Mapping[str, Any] | str | os.PathLike] = (),
                      dataset_types: Mapping[str, str] | None = None) -> Path:
    """Rewrite the card of the saved llavidal model (or adapter) in ``directory`` from its ``config.json``.

    What the card there records (when it is a llavidal card) is kept unless given anew: ``license`` (and its
    name/link), ``datasets``, the ``model-index`` results (a new report's results replace those of the same
    dataset and scoring), and the repo id (its ``model-index`` name, when that is a Hub id).
    """
    from huggingface_hub import ModelCard

    from llavidal_core.modeling import LlavidalConfig

    folder = Path(directory)
    if not (folder / "config.json").is_file():
        raise ModelCardError(f"{folder}: not a saved llavidal model folder (it has no config.json)")
    config = LlavidalConfig.from_pretrained(folder)
    old = None
    if (folder / MODEL_CARD_NAME).is_file():
        card = ModelCard.load(folder / MODEL_CARD_NAME, ignore_metadata_errors=True)
        old = card.data if card.data.get("library_name") == LIBRARY_NAME else None
    new_results = [result for report in eval_reports for result in eval_results_from_report(report, dataset_types)]
    options: dict[str, Any] = {
        "eval_results": merge_eval_results(old.eval_results if old else None, new_results),
        "datasets": datasets if datasets is not None else (old.datasets if old else None),
    }
    if license is not None:
        options["license"] = license
    elif old is not None and old.license and old.license != (base_model_license(config.base_model_name_or_path)
                                                              or {}).get("license"):
        options.update(license=old.license, license_name=old.get("license_name"),
                       license_link=old.get("license_link"))
    if repo_id is None and old is not None:
        repo_id = hub_model_id(old.model_name)
    options["model_name"] = repo_id or (old.model_name if old is not None and old.model_name else None) or \
        folder.resolve().name
    return write_model_card(config, folder, repo_id, (folder / ADAPTER_WEIGHTS_NAME).is_file(), **options)


def push_to_hub(save: Any, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload llavidal model", revision: str | None = None,
                create_pr: bool = False, license: str | None = None, datasets: str | Iterable[str] | None = None,
                eval_report: Mapping[str, Any] | str | os.PathLike | None = None) -> Any:
    """Create ``repo_id`` if needed, call ``save(folder, repo_id)`` into a temp folder, upload it; returns the commit.

    ``license``, ``datasets`` and ``eval_report`` (a ``llavidal eval mcq --out`` report) go into the model card
    the save wrote (`update_model_card`); they are checked before anything is created or uploaded.
    """
    from huggingface_hub import HfApi

    card_options = {"license": license, "datasets": dataset_ids(datasets),
                    "eval_reports": [eval_report] if eval_report is not None else []}
    for report in card_options["eval_reports"]:
        eval_results_from_report(report)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        save(folder, repo_id)
        if license is not None or datasets is not None or eval_report is not None:
            if not (Path(folder) / MODEL_CARD_NAME).is_file():
                raise ModelCardError("license, datasets and eval_report go into a model card: upload a model")
            update_model_card(folder, repo_id=repo_id, **card_options)
        return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                                 revision=revision, create_pr=create_pr)
