"""``llavidal extract pose``: skeleton files → pose features in a feature store, batched, resumable, sharded.

Inputs are skeleton files (``.skeleton``, ``.npy``, ``.npz``), folders (searched recursively for them) or
text files listing paths (one per line, ``#`` comments; relative paths are taken from the list's folder).
The id of each output is the input's path under the folder (or list) it came from, without its last
suffix (`llavidal_core.video_ids`; a file given by itself: its name), so ``S001C001P001R001A001.skeleton``
becomes ``DIR/S001C001P001R001A001.safetensors`` with the tensor ``pose`` and ``nested/S001.skeleton.npy``
found in a folder becomes ``DIR/nested/S001.skeleton.safetensors``. Behaviour:

- a file that cannot be read or encoded is appended to ``DIR/errors.jsonl`` as ``{"path", "error"}`` and
  skipped; the exit code is then 3 (0 when every file was written or already done);
- usage errors (a missing input, no skeleton files, two inputs with the same id, a bad ``--model`` or
  ``RANK``/``WORLD_SIZE``) exit with 2 before anything is written;
- ids whose feature file already holds ``pose`` are skipped (resume);
- with ``RANK`` and ``WORLD_SIZE`` set (as torchrun sets them) each process takes ``rank::world_size`` of
  the sorted inputs;
- ``--workers N`` reads and prepares files in N ``DataLoader`` worker processes (0: in this one);
- ``--model random`` encodes with random weights of the default configuration, to try the pipeline before
  a PoseCLIP is trained: it says so in a warning and in each file's metadata.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llavidal_core.errors import LlavidalError
from llavidal_core.extraction import (
    ExitAgreement,
    ExtractionUsageError,
    InputFile,
    choose_device,
    collect_inputs,
    distributed_slot,
    has_cue,
    index_by_video_id,
    prepare_output_folder,
    record_failure,
    report_summary,
    shard_for_rank,
)

CUE_NAME = "pose"
RANDOM_MODEL = "random"
RANDOM_SEED = 0
RANDOM_NOTE = "random weights (--model random): for trying the pipeline, not trained features"
SKELETON_SUFFIXES = (".skeleton", ".npy", ".npz")


def is_skeleton_path(path: Path) -> bool:
    return path.suffix.lower() in SKELETON_SUFFIXES


def collect_skeletons(inputs: Iterable[str | os.PathLike]) -> list[InputFile]:
    """Skeleton files, folders searched for them and path lists, sorted, each with the root of its id
    (see `collect_inputs`)."""
    return collect_inputs(inputs, is_skeleton_path)


def load_encoder(model: str, device, dtype_name: str):
    """The encoder named by ``--model`` (a PoseCLIP folder, a Hub id, or ``random``), and its metadata."""
    import torch

    from llavidal_pose.encoder import PoseCueEncoder
    from llavidal_pose.zero_shot import load_pose_encoder

    dtype = getattr(torch, dtype_name)
    if model == RANDOM_MODEL:
        print(f"llavidal: warning: {RANDOM_NOTE}", file=sys.stderr)
        torch.manual_seed(RANDOM_SEED)
        encoder = PoseCueEncoder().eval()
        notes = {"encoder": RANDOM_MODEL, "random_weights": "true", "random_seed": str(RANDOM_SEED),
                 "note": RANDOM_NOTE}
    else:
        try:
            encoder = load_pose_encoder(model)
        except Exception as exc:  # noqa: BLE001 - any failure to load is a bad --model
            raise ExtractionUsageError(f"--model {model}: cannot load a pose encoder ({type(exc).__name__}: {exc})") from None
        notes = {"encoder": str(model), "random_weights": "false"}
    return encoder.to(device=device, dtype=dtype), notes


def describe_error(exc: BaseException) -> str:
    """The line errors.jsonl records: a llavidal error's own message (it names the file), else its type too."""
    return str(exc) if isinstance(exc, LlavidalError) else f"{type(exc).__name__}: {exc}"


class PreparedSkeletons:
    """A map-style dataset of ``(path, backbone input or None, error or None)``, for a ``DataLoader``."""

    def __init__(self, paths: Sequence[Path], preprocessing):
        self.paths = list(paths)
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from llavidal_pose.skeleton import load_skeleton

        path = self.paths[index]
        try:
            return path, self.preprocessing(load_skeleton(path)), None
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            return path, None, describe_error(exc)


def extract(inputs: Sequence[str], out: str | os.PathLike, model: str, *, device: str = "auto",
            dtype: str = "float32", batch_size: int = 8, workers: int = 0, progress: bool | None = None) -> int:
    """Run the extraction (module docstring); returns the exit code."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from llavidal_core.features import FeatureStore
    from llavidal_pose import __version__

    if batch_size < 1:
        raise ExtractionUsageError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ExtractionUsageError(f"--workers must be 0 or more, got {workers}")
    paths = collect_skeletons(inputs)
    if not paths:
        raise ExtractionUsageError(f"no skeleton files ({', '.join(SKELETON_SUFFIXES)}) in "
                                   f"{', '.join(map(str, inputs))}")
    by_id = index_by_video_id(paths)
    ids = {path: video_id for video_id, path in by_id.items()}
    rank, world_size, local_rank = distributed_slot()
    mine = shard_for_rank(sorted(by_id.values(), key=str), rank, world_size)
    encoder, notes = load_encoder(model, choose_device(device, local_rank), dtype)
    store = FeatureStore(prepare_output_folder(out))
    failures = written = skipped = 0

    def fail(path: Path, message: str) -> None:
        nonlocal failures
        failures += 1
        record_failure(store.root, str(path), ids[path], message, rank)

    todo = []
    for path in mine:
        if has_cue(store, ids[path], CUE_NAME):
            skipped += 1
        else:
            todo.append(path)
    agreement = ExitAgreement(world_size)

    metadata: dict[str, Any] = {**notes, "encoder_class": "llavidal_pose.encoder:PoseCueEncoder",
                                "llavidal_pose_version": __version__,
                                "preprocessing": json.dumps(asdict(encoder.preprocessing), sort_keys=True),
                                **encoder.feature_metadata()}
    bar = tqdm(total=len(todo), desc=f"pose features (rank {rank}/{world_size})" if world_size > 1 else "pose features",
               unit="file", disable=None if progress is None else not progress)
    loader = DataLoader(PreparedSkeletons(todo, encoder.preprocessing), batch_size=batch_size, num_workers=workers,
                        collate_fn=list)
    with bar:
        for batch in loader:
            for path, _, error in batch:
                if error is not None:
                    fail(path, error)
                    bar.update(1)
            ready = [(path, array) for path, array, error in batch if error is None]
            if not ready:
                continue
            inputs_tensor = torch.from_numpy(np.stack([array for _, array in ready])).to(encoder.device, encoder.dtype)
            with torch.inference_mode():
                tokens, _ = encoder.forward_features(inputs_tensor)
            for (path, _), features in zip(ready, tokens):
                try:
                    encoder.check_features(features, source=path)
                    store.write(ids[path], CUE_NAME, features, {**metadata, "source": str(path)},
                                replace_corrupt=True)
                    written += 1
                except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                    fail(path, describe_error(exc))
                bar.update(1)
    return agreement.exit_code(report_summary("pose", written, skipped, failures, store.root))
