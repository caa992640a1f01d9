"""The llavidal-video plugin module (entry point ``video``): registers the cue and ``llavidal extract video``.

Kept light on purpose: nothing here imports torch, numpy or a decoder; the encoder is named by import path
and the command's work is imported when it runs.
"""

from llavidal_core import hookimpl
from llavidal_core.seed_cues import VIDEO

from llavidal_video import __version__
from llavidal_video.command import EXTRACT_HELP, add_extract_arguments, run_extract

ENCODER = "llavidal_video.encoder:VideoCueEncoder"


@hookimpl
def llavidal_register_cues(register):
    import dataclasses

    register(dataclasses.replace(VIDEO, version=__version__), encoder=ENCODER)


@hookimpl
def llavidal_register_commands(register):
    register(("extract", "video"), help=EXTRACT_HELP, add_arguments=add_extract_arguments, run=run_extract)
