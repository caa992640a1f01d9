"""Built-in ``llavidal features ...`` commands (registered through the commands hook)."""

from llavidal_core.hookspecs import hookimpl


@hookimpl
def llavidal_register_commands(register):
    pass
