"""The ``clipper query-frontend`` and ``clipper management-frontend`` commands.

They take exactly the options of ``python -m clipper_frontend.query`` and ``python -m clipper_frontend.management``
(both come from :mod:`clipper_frontend.settings`) and run the frontend in the foreground until SIGTERM/SIGINT, using
the plugin host the ``clipper`` command already built. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from clipper_frontend.settings import MANAGEMENT_DESCRIPTION, QUERY_DESCRIPTION, ManagementSettings, QuerySettings

if TYPE_CHECKING:
    from clipper_core.commands import CommandContext, CommandRegistry


def run_query(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_frontend.query.app import run_query_frontend

    run_query_frontend(QuerySettings.from_namespace(args), ctx.host.input_types())
    return 0


def run_management(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_frontend.management.app import run_management_frontend

    return run_management_frontend(ManagementSettings.from_namespace(args), ctx.host)


def register(commands: CommandRegistry) -> None:
    commands.add("query-frontend", help=QUERY_DESCRIPTION, configure=QuerySettings.add_arguments, run=run_query)
    commands.add(
        "management-frontend",
        help=MANAGEMENT_DESCRIPTION,
        configure=ManagementSettings.add_arguments,
        run=run_management,
    )
