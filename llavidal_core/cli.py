"""The ``llavidal`` command line: built-in commands plus whatever plugins register.

Commands are argparse sub-parsers arranged by word path (``llavidal features list``). User errors print
one line, ``llavidal: error: ...``, with exit code 1 (2 for usage errors, as argparse does); set
``LLAVIDAL_DEBUG=1`` to see the traceback instead. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Sequence

from llavidal_core import __version__
from llavidal_core.errors import LlavidalError
from llavidal_core.plugins import CommandRegistration, PluginLoadWarning, describe_exception, get_plugin_manager
from llavidal_core.stdout_lines import silence_stdout

DEBUG_ENV = "LLAVIDAL_DEBUG"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, PluginLoadWarning):
        print(f"{message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


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
    parser.set_defaults(run=None, usage_parser=parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_plugins_command(subparsers)
    manager = get_plugin_manager()
    _add_plugin_commands(subparsers, list(manager.commands().values()), manager)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    debug = os.environ.get(DEBUG_ENV, "").strip() not in {"", "0"}
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.run is None:
            args.usage_parser.print_help(sys.stderr)
            return 2
        code = args.run(args)
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print("llavidal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`llavidal ... | head -1`): not an error
        silence_stdout()
        return 0
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
