"""The ``llavidal`` command line: built-in commands plus whatever plugins register.

Commands are argparse sub-parsers arranged by word path (``llavidal features list``). User errors print
one line, ``llavidal: error: ...``, with exit code 1 (2 for a `UsageError`, as argparse does for its own); set
``LLAVIDAL_DEBUG=1`` to see the traceback instead. This module imports neither torch nor transformers.

Logging is configured here, for the length of one `main` call, and nowhere else; library code only logs:

- ``llavidal.<command>`` loggers (``llavidal.train``, ``llavidal.demo``, ``llavidal.pose``) carry what a
  command tells its user as it runs (stages, data kept, step and loss): shown at INFO by default;
- module loggers, ``logging.getLogger(__name__)`` under ``llavidal_core`` and the plugins' ``llavidal_*``
  packages, carry the library's details: shown from WARNING by default, as Python shows them unconfigured.

``--quiet`` shows warnings and errors only, ``--verbose`` everything down to DEBUG. Records are written as
their bare message to the ``sys.stderr`` of the moment (warnings and errors after ``llavidal: warning:`` or
``llavidal: error:``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Callable, Sequence

from llavidal_core import __version__
from llavidal_core.errors import LlavidalError, UsageError
from llavidal_core.plugins import CommandRegistration, PluginLoadWarning, describe_exception, get_plugin_manager
from llavidal_core.stdout_lines import silence_stdout

DEBUG_ENV = "LLAVIDAL_DEBUG"
PROGRESS_LOGGER = "llavidal"  # the parent of the llavidal.<command> loggers
PACKAGE_PREFIX = "llavidal_"  # the core's and the plugins' top-level packages: llavidal_core, llavidal_pose, ...


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, PluginLoadWarning):
        print(f"{message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class _CurrentStderrHandler(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is when a record is emitted (as `logging.lastResort` does), so
    a replaced stream (pytest's capsys, a caller's redirection) gets the records."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)  # not StreamHandler's: it would store today's stream

    @property
    def stream(self):
        return sys.stderr


class _MessageFormatter(logging.Formatter):
    """The bare message; a warning or error starts with ``llavidal: warning:`` / ``llavidal: error:``."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING and not message.startswith("llavidal"):
            return f"llavidal: {'error' if record.levelno >= logging.ERROR else 'warning'}: {message}"
        return message


def _our_loggers() -> tuple[list[str], list[str]]:
    """The names of the progress logger and of the package loggers (every imported ``llavidal_*`` package:
    the core and the plugins, whose top-level packages the plugin loading has imported)."""
    packages = sorted({name.partition(".")[0] for name in sys.modules if name.startswith(PACKAGE_PREFIX)})
    return [PROGRESS_LOGGER], packages


def configure_logging(verbosity: int) -> Callable[[], None]:
    """Send the llavidal loggers to stderr at the levels of ``verbosity`` (-1 quiet, 0 default, 1 verbose);
    returns what undoes it (levels and handlers as they were)."""
    progress, packages = _our_loggers()
    if verbosity < 0:
        levels = dict.fromkeys(progress + packages, logging.WARNING)
    elif verbosity > 0:
        levels = dict.fromkeys(progress + packages, logging.DEBUG)
    else:
        levels = {**dict.fromkeys(progress, logging.INFO), **dict.fromkeys(packages, logging.WARNING)}
    handler = _CurrentStderrHandler()
    handler.setFormatter(_MessageFormatter())
    configured = []
    for name, level in levels.items():
        logger = logging.getLogger(name)
        configured.append((logger, logger.level))
        logger.setLevel(level)
        logger.addHandler(handler)

    def undo() -> None:
        for logger, level in configured:
            logger.removeHandler(handler)
            logger.setLevel(level)

    return undo


def run_plugins_command(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    if args.errors:
        records = [
            {"name": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
            for f in manager.failures
        ]
    else:
        records = manager.describe()
    print(json.dumps(records, indent=2))
    return 0


def _add_plugins_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "plugins", help="list the installed plugins as JSON",
        description="List the loaded plugins (name, distribution, version, hooks, cues they register) as JSON.",
    )
    parser.add_argument("--errors", action="store_true", help="list the plugins that failed to load, and why")
    parser.set_defaults(run=run_plugins_command)


def _add_plugin_commands(subparsers, commands: list[CommandRegistration], manager) -> None:
    """Add each command at its word path; one whose ``add_arguments`` fails is left out and reported."""
    groups: dict[tuple[str, ...], object] = {(): subparsers}
    for command in sorted(commands, key=lambda c: c.path):
        arguments = _plugin_arguments(command, manager)
        if arguments is None:
            continue
        for depth in range(1, len(command.path)):
            prefix = command.path[:depth]
            if prefix not in groups:
                group_parser = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = group_parser.add_subparsers(title="commands", metavar="COMMAND")
                group_parser.set_defaults(run=None, usage_parser=group_parser)
        leaf = groups[command.path[:-1]].add_parser(
            command.path[-1], help=command.help, description=command.help, parents=[arguments], add_help=False
        )
        leaf.set_defaults(run=command.run, usage_parser=leaf)


def _plugin_arguments(command: CommandRegistration, manager) -> argparse.ArgumentParser | None:
    """A parser holding ``-h`` and the command's own arguments, or None (reported) if ``add_arguments`` fails."""
    arguments = argparse.ArgumentParser()
    if command.add_arguments is None:
        return arguments
    try:
        command.add_arguments(arguments)
    except BaseException as exc:  # noqa: BLE001 - part of loading plugins: a plugin can only break itself
        manager.report_failure(command.source, f"add_arguments of the command {' '.join(command.path)!r} raised "
                                               f"{describe_exception(exc)}; the command is left out")
        return None
    return arguments


def build_parser() -> argparse.ArgumentParser:
    """The ``llavidal`` parser: ``plugins`` plus every registered command (plugin failures are only reported)."""
    parser = argparse.ArgumentParser(
        prog="llavidal",
        description="llavidal: video language models of activities of daily living.",
    )
    parser.add_argument("--version", action="version", version=f"llavidal {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_const", dest="cli_verbosity", const=-1, default=0,
                          help="print only warnings and errors (no progress or notes)")
    loudness.add_argument("-v", "--verbose", action="store_const", dest="cli_verbosity", const=1,
                          help="also print the library's details (debug messages)")
    parser.set_defaults(run=None, usage_parser=parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_plugins_command(subparsers)
    manager = get_plugin_manager()
    _add_plugin_commands(subparsers, list(manager.commands().values()), manager)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    debug = os.environ.get(DEBUG_ENV, "").strip() not in {"", "0"}
    undo_logging = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.run is None:
            args.usage_parser.print_help(sys.stderr)
            return 2
        undo_logging = configure_logging(args.cli_verbosity)
        code = args.run(args)
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print("llavidal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`llavidal ... | head -1`): not an error
        silence_stdout()
        return 0
    except UsageError as exc:  # the command line, or what it names, cannot work as given
        if debug:
            raise
        print(f"llavidal: error: {exc}", file=sys.stderr)
        return 2
    except (LlavidalError, OSError, ValueError) as exc:
        if debug:
            raise
        print(f"llavidal: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, never a bare traceback
        if debug:
            raise
        print(f"llavidal: error: unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        if undo_logging is not None:
            undo_logging()
