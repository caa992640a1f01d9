"""Hub I/O around the fusion model: the generated model card and `push_to_hub`.

The card (``README.md``, written on every ``save_pretrained``) lists the model's cues and the exact
``pip install`` lines of the plugins they need, taken from each `CueSpec`'s ``distribution``. `push_to_hub`
saves the model (and the processor, when given) into a temporary folder and uploads it in one commit
through `huggingface_hub.HfApi`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from llavidal_core.cues import CueSpec

CORE_DISTRIBUTION = "llavidal-core"
MODEL_CARD_NAME = "README.md"


def plugin_install_lines(cues: list[CueSpec]) -> list[str]:
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


def model_card_text(config: Any, repo_id: str | None = None, adapter_only: bool = False) -> str:
    """The model card of a llavidal model (``config`` is a `LlavidalConfig`)."""
    cues = list(config.cue_specs)
    text_config = config.text_config
    base = config.base_model_name_or_path
    front_matter = ["---", "library_name: llavidal", "tags:", "- llavidal", "- video-language-model"]
    front_matter += [f"- llavidal-cue-{spec.name}" for spec in cues]
    if base and not os.path.isabs(base) and base.count("/") == 1:
        front_matter.append(f"base_model: {base}")
    front_matter.append("---")
    title = repo_id or "llavidal model"
    what = ("a llavidal adapter: the projectors and cue-token embedding rows that fuse" if adapter_only
            else "a llavidal model:")
    lines = [
        *front_matter,
        "",
        f"# {title}",
        "",
        f"This is {what} a {text_config.model_type} causal LM (hidden size {text_config.hidden_size}, "
        f"vocabulary {text_config.vocab_size}) with {len(cues)} cue{'s' if len(cues) != 1 else ''}."
        + (f" Base LM: `{base}`." if base else ""),
        "",
        "| cue | placeholder | rows | feature dim | projector | plugin |",
        "|---|---|---|---|---|---|",
    ]
    for spec in cues:
        rows = str(spec.num_tokens) if spec.num_tokens is not None else f"{spec.tokens_per_item} per item"
        lines.append(f"| {spec.name} | `{spec.placeholder}` | {rows} | {spec.feature_dim} | {spec.projector} | "
                     f"{spec.distribution or '-'} |")
    lines += ["", "## Install", "", "```bash", *plugin_install_lines(cues), "```", ""]
    lines += [
        "The cue plugins compute features from raw inputs; a model loads and runs on precomputed features "
        "without them.",
        "",
        "## Load",
        "",
        "```python",
        "import llavidal_core.modeling",
    ]
    where = repo_id or "path/to/model"
    if adapter_only:
        lines += [
            "from llavidal_core.modeling import LlavidalForConditionalGeneration",
            "",
            f'model = LlavidalForConditionalGeneration.from_adapter("{where}")',
        ]
    else:
        lines += [
            "from transformers import AutoModelForCausalLM",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        ]
    lines += ["```", ""]
    return "\n".join(lines)


def write_model_card(config: Any, directory: str | os.PathLike, repo_id: str | None = None,
                     adapter_only: bool = False) -> Path:
    path = Path(directory) / MODEL_CARD_NAME
    path.write_text(model_card_text(config, repo_id, adapter_only), encoding="utf-8")
    return path


def push_to_hub(save: Any, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload llavidal model", revision: str | None = None,
                create_pr: bool = False) -> Any:
    """Create ``repo_id`` if needed, call ``save(folder, repo_id)`` into a temp folder, upload it; returns the commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        save(folder, repo_id)
        return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                                 revision=revision, create_pr=create_pr)
