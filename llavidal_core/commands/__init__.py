"""The core's built-in commands, one module per command group, each a built-in plugin
(``llavidal_register_commands``): ``features``, ``instructions``, ``eval``, ``convert``, ``train``,
``ask``/``chat``/``serve``, ``demo``, and ``extract CUE`` for every cue whose plugin registers an encoder.

These modules import only argparse and the core's light modules; each command imports its work when it runs.
"""
