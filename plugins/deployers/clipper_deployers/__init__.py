"""Model deployers for Clipper in Python: the Python closure deployer (``clipper_deployers.python``)."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("clipper-deployers")
