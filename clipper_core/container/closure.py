"""The Python-closure model: ``func.pkl`` (cloudpickle) in ``CLIPPER_MODEL_PATH``, as ``deploy_python_closure``
writes it."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from clipper_core.container.base import ModelContainerBase

logger = logging.getLogger(__name__)

FUNC_FILE = "func.pkl"
MODULES_DIR = "modules"


def load_closure(model_path: str | os.PathLike[str]) -> Any:
    """Append ``<model_path>/modules`` to ``sys.path`` and unpickle ``<model_path>/func.pkl``.

    :raises OSError: the file cannot be read.
    :raises TypeError: the pickle does not hold a callable.
    :raises Exception: whatever unpickling raises (``UnpicklingError``, ``ImportError`` for a missing package, ...).
    """
    import cloudpickle

    path = os.fspath(model_path)
    modules = os.path.join(path, MODULES_DIR)
    if modules not in sys.path:
        sys.path.append(modules)
    with open(os.path.join(path, FUNC_FILE), "rb") as f:
        func = cloudpickle.load(f)
    if not callable(func):
        msg = f"{FUNC_FILE} does not hold a callable (found {type(func).__name__})"
        raise TypeError(msg)
    return func


class PythonClosureContainer(ModelContainerBase):
    """Calls the closure once per batch; the runtime checks the result and converts each output with ``str``."""

    def __init__(self, model_path: str | os.PathLike[str]) -> None:
        self.predict_func = load_closure(model_path)

    def predict(self, inputs: Any) -> Any:
        return self.predict_func(inputs)

    predict_ints = predict
    predict_floats = predict
    predict_doubles = predict
    predict_bytes = predict
    predict_strings = predict
