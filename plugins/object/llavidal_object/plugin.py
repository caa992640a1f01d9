"""The llavidal-object plugin module (entry point ``object``): registers the cue and ``llavidal extract object``.

Kept light on purpose: nothing here imports torch, numpy or transformers; the encoder is named by import
path and the command's work is imported when it runs.
"""

import dataclasses

from llavidal_core import hookimpl
from llavidal_core.seed_cues import OBJECT

from llavidal_object import __version__
from llavidal_object.command import EXTRACT_HELP, add_extract_arguments, run_extract

ENCODER = "llavidal_object.encoder:ObjectCueEncoder"


@hookimpl
def llavidal_register_cues(register):
    register(dataclasses.replace(OBJECT, version=__version__), encoder=ENCODER)


@hookimpl
def llavidal_register_commands(register):
    register(("extract", "object"), help=EXTRACT_HELP, add_arguments=add_extract_arguments, run=run_extract)
