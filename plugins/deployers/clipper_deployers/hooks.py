"""Entry point of clipper-deployers: registers the deployers with the plugin host."""

from __future__ import annotations

from typing import Any

from clipper_core import hookimpl


@hookimpl
def clipper_register_deployers() -> list[Any]:
    from clipper_deployers import onnx, python, pytorch  # framework imports happen on use only

    return [python, pytorch, onnx]
