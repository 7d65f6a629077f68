"""The ``clipper`` command. Every sub-command comes from a plugin through ``clipper_register_commands``; the core's
own (``start``, ``stop``, ``status``, ``plugins``, ``predict``) are built-ins registered the same way.

Every :class:`ClipperException` ends the command with a one-line ``error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from clipper_core.cli._managers import add_manager_arguments
from clipper_core.commands import CommandContext, CommandRegistry
from clipper_core.errors import ClipperException
from clipper_core.registry import PluginHost

logger = logging.getLogger(__name__)


def collect_commands(host: PluginHost) -> CommandRegistry:
    """Every command the installed plugins add."""
    commands = CommandRegistry()
    host.pm.hook.clipper_register_commands(commands=commands)
    return commands


def build_parser(host: PluginHost, commands: CommandRegistry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipper", description="Manage a Clipper prediction-serving cluster")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        if command.manager_options:
            add_manager_arguments(p, host)
    return parser


def _setup_logging(verbose: bool) -> None:
    # Errors reach the user as one line from main(); library log records only show with --verbose, and plugin hook
    # calls whenever CLIPPER_TRACE_PLUGINS=1 asks for them.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.CRITICAL, format="%(levelname)s %(name)s: %(message)s"
    )
    if os.environ.get("CLIPPER_TRACE_PLUGINS") == "1":
        logging.getLogger("clipper_core.plugins").setLevel(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging("-v" in argv or "--verbose" in argv)
    try:
        host = PluginHost()
        commands = collect_commands(host)
        args = build_parser(host, commands).parse_args(argv)
        return commands.get(args.command).run(args, CommandContext(host))
    except ClipperException as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `clipper status --json | head`: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
