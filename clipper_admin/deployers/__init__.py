"""Compatibility path of the deployers: ``from clipper_admin.deployers import python as python_deployer``,
``from clipper_admin.deployers import pyspark as pyspark_deployer``.

Submodules are imported on first use, so ``import clipper_admin`` works without ``clipper-deployers`` installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["onnx", "pyspark", "python", "pytorch"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
