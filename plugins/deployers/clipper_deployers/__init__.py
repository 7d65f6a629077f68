"""Model deployers for Clipper in Python: Python closures (``clipper_deployers.python``) and PySpark models
(``clipper_deployers.pyspark``, with the ``pyspark`` extra)."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("clipper-deployers")
