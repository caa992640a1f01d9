"""llavidal-video: the ``video`` cue (video files → CLIP spatio-temporal features), as a llavidal plugin.

Importing this package is cheap (no torch, numpy or decoders); the pieces live in submodules:
`sampling` (frame indices), `decoding` (decord / PyAV readers), `preprocessing`, `towers` (CLIP vision
towers cut at the feature layer), `pooling`, `encoder` (`VideoCueEncoder`) and `extract` (the
``llavidal extract video`` command).
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

try:
    __version__ = _distribution_version("llavidal-video")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
