"""The hooks a llavidal plugin can implement.

Every hook hands the plugin a `register` callback, as simonw/llm does; a plugin calls it once per thing it
provides. Implement them with `@llavidal_core.hookimpl` in the module named by your
`[project.entry-points.llavidal]` entry. Keep the module light: import torch and your models inside the
factories you register, never at module level, so that `llavidal plugins` stays fast.

A plugin can only break itself: if importing it or calling one of its hooks raises anything (``sys.exit()``
and ``KeyboardInterrupt`` included), or a ``register`` call is malformed, it is reported by
``llavidal plugins --errors`` and the rest load. A name the core already provides (the ``train`` command,
the ``linear`` projector, ...) stays the core's; a name two plugins register goes to neither.
"""

import pluggy

PROJECT_NAME = "llavidal"
ENTRY_POINT_GROUP = "llavidal"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def llavidal_register_cues(register):
    """Register cues: ``register(spec, encoder=None)``.

    ``spec`` is a `llavidal_core.CueSpec`. ``encoder`` is the cue's `CueEncoder` class, best given as an
    import path ``"package.module:ClassName"`` so that it is imported only when an encoder is needed. The
    inference pipeline loads an encoder with ``EncoderClass.from_pretrained(id_or_path)``; a plain callable
    is accepted too and is then called with that id.
    """


@hookspec
def llavidal_register_projectors(register):
    """Register projectors: ``register(name, builder)``.

    ``builder(feature_dim, llm_hidden_size)`` returns an ``nn.Module`` mapping ``(..., feature_dim)`` to
    ``(..., llm_hidden_size)``. Import torch inside the builder.
    """


@hookspec
def llavidal_register_commands(register):
    """Register CLI subcommands: ``register(path, *, help, add_arguments, run)``.

    ``path`` is a tuple of words (letters, digits, ``-``, ``_``), e.g. ``("extract", "video")`` for
    ``llavidal extract video``; it may not lie inside another command or be a group of one. ``help``
    is a string. ``add_arguments(parser)`` adds argparse arguments (if it raises, the command is left
    out); ``run(args)`` does the work and returns an exit code (``None`` means 0). Raise
    `llavidal_core.LlavidalError` for problems the user can fix.
    """
