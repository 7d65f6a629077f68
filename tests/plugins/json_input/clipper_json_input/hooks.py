"""Entry-point module: only hook implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_core import hookimpl

if TYPE_CHECKING:
    from clipper_core.commands import CommandRegistry
    from clipper_core.input_types import InputType


@hookimpl
def clipper_register_input_types() -> list[InputType]:
    from clipper_json_input import JsonInput

    return [JsonInput()]


@hookimpl
def clipper_register_commands(commands: CommandRegistry) -> None:
    from clipper_json_input.command import add_options, run

    commands.add("json-encode", help="show the wire bytes of a JSON query input", run=run, configure=add_options)
