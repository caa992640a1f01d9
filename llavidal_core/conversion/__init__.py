"""Converting the seed's checkpoints: its projector files (`convert_legacy`) and LLaVA deltas (`apply_delta`).

The CLI commands (``llavidal convert legacy`` and ``llavidal convert apply-delta``) are registered by
`llavidal_core.commands.conversion`.
"""

from llavidal_core.conversion.checkpoints import ConversionError
from llavidal_core.conversion.delta import apply_delta
from llavidal_core.conversion.legacy import convert_legacy

__all__ = ["ConversionError", "apply_delta", "convert_legacy"]
