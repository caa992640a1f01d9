"""llavidal-object: the ``object`` cue (video → 8 CLIP region-feature rows per tracked object), a llavidal plugin.

Importing this package is cheap (no torch, numpy or transformers); the pieces live in submodules: `tags`
(answers → vocabulary), `boxes` (OWLv2 box mapping, IoU, NMS, crop windows), `tracking`, `frames` (reading
through llavidal-video), `models`, `tagger` (BLIP-2), `detector` (OWLv2), `crop_encoder` (CLIP), `pipeline`
(the chain), `encoder` (`ObjectCueEncoder`) and `extract` (the ``llavidal extract object`` command).
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

try:
    __version__ = _distribution_version("llavidal-object")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
