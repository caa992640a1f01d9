"""llavidal core: cue specs, the plugin system, the feature store and the fusion head.

Importing this package is cheap: it never imports torch or transformers. Everything that needs them
(the fusion model, projector modules, the feature store) lives in submodules imported on use.
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

from llavidal_core.cues import CueSpec
from llavidal_core.errors import LlavidalError
from llavidal_core.hookspecs import hookimpl

try:
    __version__ = _distribution_version("llavidal-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["CueSpec", "LlavidalError", "hookimpl", "__version__"]
