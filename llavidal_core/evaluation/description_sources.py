"""Where a described video's features come from: a videos folder (encoded with the model's own encoders) or a
feature store, for a whole video (Charades) or for each of its clips (TSU).

As the original scripts open them (ADL-X/LLAVIDAL ``evaluation/ADL-X/eval_charades_desc.py``,
``eval_tsu_desc.py``): a Charades video is ``<videos>/<video_name>.mp4``; a TSU video's clips are
``<videos>/<video_name>_*.mp4`` (``scripts/data_processing/tsu_trim_1sec_clips.py`` cuts, despite its name,
one-minute clips ``<name>_clip1.mp4``, ``<name>_clip2.mp4`` ...). In a feature store the ids are the same
names without ``.mp4`` (`llavidal_core.video_ids`). Clips are taken in natural order (clip2 before clip10);
the original takes ``glob``'s order, which is the file system's and arbitrary, so its per-clip descriptions
can be joined out of order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from llavidal_core.errors import LlavidalError

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value: ``clip2`` < ``clip10``."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def clips_among(names: Iterable[str], video_name: str) -> list[str]:
    """The names ``<video_name>_<anything>`` among ``names``, in natural order (`natural_key`)."""
    prefix = f"{video_name}_"
    return sorted((name for name in names if name.startswith(prefix) and len(name) > len(prefix)), key=natural_key)


class VideosFolder:
    """Features computed from the videos of ``folder`` by ``pipeline``'s encoders (every cue that reads videos).

    Raises `LlavidalError` when no cue of the model reads videos (its features must then come from a store).
    """

    def __init__(self, pipeline, folder: Path):
        if not pipeline.video_cues():
            raise LlavidalError(f"no cue of the model reads videos (its cues: {list(pipeline.cue_names)}); give "
                                "its features with --features DIR")
        self.pipeline = pipeline
        self.folder = Path(folder)
        self._names = sorted(path.stem for path in self.folder.glob("*.mp4"))

    def _features(self, path: Path) -> dict[str, torch.Tensor]:
        if not path.is_file():
            return {}
        return self.pipeline.compute_features([{cue: str(path) for cue in self.pipeline.video_cues()}])[0]

    def video_features(self, video_name: str) -> dict[str, torch.Tensor]:
        """The features of ``<folder>/<video_name>.mp4``; empty when there is no such file."""
        return self._features(self.folder / f"{video_name}.mp4")

    def clip_ids(self, video_name: str) -> list[str]:
        """The clips ``<video_name>_*.mp4`` in the folder, without ``.mp4``, in natural order."""
        return clips_among(self._names, video_name)

    def clip_features(self, clip_id: str) -> dict[str, torch.Tensor]:
        return self._features(self.folder / f"{clip_id}.mp4")


class FeatureFolder:
    """Features read from a `llavidal_core.features.FeatureStore`, for the cues ``cue_names`` it holds."""

    def __init__(self, store, cue_names: Sequence[str]):
        self.store = store
        self.cue_names = tuple(cue_names)
        self._ids = [video_id for video_id in store.video_ids() if "/" not in video_id]

    def video_features(self, video_name: str) -> dict[str, torch.Tensor]:
        """The features stored for id ``video_name`` (objects flattened to rows); empty when none."""
        from llavidal_core.evaluation.mcq_eval import cue_features_for

        return cue_features_for(self.store, video_name, self.cue_names)

    def clip_ids(self, video_name: str) -> list[str]:
        """The ids ``<video_name>_*`` at the store's top level, in natural order."""
        return clips_among(self._ids, video_name)

    def clip_features(self, clip_id: str) -> dict[str, torch.Tensor]:
        return self.video_features(clip_id)
