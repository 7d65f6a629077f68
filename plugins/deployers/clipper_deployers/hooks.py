"""Entry point of clipper-deployers: registers the deployers with the plugin host."""

from __future__ import annotations

from typing import Any

from clipper_core import hookimpl


@hookimpl
def clipper_register_deployers() -> list[Any]:
    # Framework deployers import their framework (torch, onnxruntime, pyspark) only when used.
    from clipper_deployers import onnx, pyspark, python, pytorch

    return [python, pytorch, onnx, pyspark]
