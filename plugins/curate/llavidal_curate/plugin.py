"""The llavidal-curate plugin module (entry point ``curate``): registers ``llavidal curate`` and
``llavidal prepare`` commands. Kept light: the command modules import only argparse; each command imports
its work when it runs."""

from llavidal_core import hookimpl


@hookimpl
def llavidal_register_commands(register):
    from llavidal_curate.video_commands import register_video_commands
    from llavidal_curate.text_commands import register_text_commands

    register_video_commands(register)
    register_text_commands(register)
