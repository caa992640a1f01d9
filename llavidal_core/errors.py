"""Exception types shared by the core and the plugins.

Every error a user can cause derives from `LlavidalError`, so the CLI can print it as one line.
"""


class LlavidalError(Exception):
    """A problem the user can fix: bad input, a missing file, a missing plugin."""


class PluginLoadError(LlavidalError):
    """A plugin could not be imported or registered (raised only in strict mode)."""


class DuplicateRegistrationError(LlavidalError):
    """Two plugins registered the same cue, projector or command name."""


class MissingPluginError(LlavidalError):
    """A cue or projector is needed but no installed plugin provides it."""


class FeatureStoreError(LlavidalError):
    """A feature file is missing, unreadable or does not hold what was asked for."""


class UnsafePickleError(LlavidalError):
    """A legacy pickle asked to load something other than numpy arrays."""


class UsageError(LlavidalError):
    """A command line or call that cannot run as given (a bad option value, no inputs, two inputs with one id),
    found before anything is written. The CLI prints it as one ``llavidal: error:`` line with exit code 2."""
