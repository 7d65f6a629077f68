"""Which model class serves a model directory: the Python closure, or the one its ``metadata.json`` names.

A deployer whose models need more than ``func.pkl`` (a framework model saved with its own writer, a long-lived
session to run it in) writes ``metadata.json`` with a ``"container"`` key naming a class by reference,
``"package.module:Class"``. The runtime imports it and builds it with the model directory, once per replica::

    {"container": "clipper_deployers.pyspark_container:PySparkContainer", ...}

The class is a :class:`~clipper_core.container.base.ModelContainerBase` (or anything with a ``predict_<type>`` or
``predict`` method) whose constructor takes the model directory. Without the key the directory holds a Python
closure. The core imports no framework: the class and its framework come from the replica's environment.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from clipper_core.files import read_json

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
CONTAINER_KEY = "container"


class ModelLoadError(Exception):
    """The model directory names a container class that cannot be imported."""


def container_reference(model_path: str | os.PathLike[str]) -> str | None:
    """The ``"module:Class"`` that ``metadata.json`` names, or ``None`` for a Python-closure directory."""
    meta = read_json(Path(model_path, METADATA_FILE))
    ref = None if meta is None else meta.get(CONTAINER_KEY)
    return ref if isinstance(ref, str) and ref.strip() else None


def import_container_class(ref: str) -> Any:
    """The class ``ref`` (``"package.module:Class"``) names.

    :raises ModelLoadError: malformed reference, module not importable, or no such attribute.
    """
    module_name, sep, attr = ref.strip().partition(":")
    if not sep or not module_name or not attr:
        msg = f"{METADATA_FILE} names the container {ref!r}; it must look like 'package.module:Class'"
        raise ModelLoadError(msg)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = (
            f"this model needs {module_name} to run ({type(exc).__name__}: {exc}); install the deployer package "
            "that built it into the replica's environment"
        )
        raise ModelLoadError(msg) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        msg = f"{module_name} has no {attr!r} (named by {METADATA_FILE})"
        raise ModelLoadError(msg)
    return cls


def load_model(model_path: str | os.PathLike[str]) -> Any:
    """The model object for ``model_path``: the named container class built with the directory, else the closure.

    :raises Exception: whatever loading raises (the runtime reports it as the replica's load error).
    """
    ref = container_reference(model_path)
    if ref is None:
        from clipper_core.container.closure import PythonClosureContainer

        return PythonClosureContainer(model_path)
    logger.info("Loading the model in %s with %s", model_path, ref)
    return import_container_class(ref)(os.fspath(model_path))
