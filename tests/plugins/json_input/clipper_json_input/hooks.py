"""Entry-point module: only hook implementations."""

from __future__ import annotations

from clipper_core import hookimpl
from clipper_core.input_types import InputType


@hookimpl
def clipper_register_input_types() -> list[InputType]:
    from clipper_json_input import JsonInput

    return [JsonInput()]
