"""Entry point of clipper-deployers: registers the deployers with the plugin host."""

from __future__ import annotations

from typing import Any

from clipper_core import hookimpl


@hookimpl
def clipper_register_deployers() -> list[Any]:
    # The PySpark deployer module imports pyspark only when used: it registers without pyspark installed.
    from clipper_deployers import pyspark, python

    return [python, pyspark]
