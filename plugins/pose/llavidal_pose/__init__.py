"""llavidal-pose: the ``pose`` cue of llavidal (NTU RGB+D skeletons → PoseCLIP features of shape (256, 216)).

Importing this package is cheap (no torch, no numpy); the pieces live in submodules:
`skeleton` (file I/O; `array_files` reads arrays with their size checked first), `actors` (body ids joined
into actor tracks), `preprocess`, `backbone`, `encoder` (`PoseCueEncoder`), `text` (the CLIP text
tower), `training` (PoseCLIP alignment and zero-shot classification), `synthetic` (generated motions)
and `extraction` (``llavidal extract pose``).
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

from llavidal_core.seed_cues import POSE

try:
    __version__ = _distribution_version("llavidal-pose")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

DISTRIBUTION = "llavidal-pose"

__all__ = ["DISTRIBUTION", "POSE", "__version__"]
