"""What the framework deployers (PyTorch, ONNX) share: input checks, the model directory, the replica's loader.

A framework model directory holds the saved model, ``metadata.json`` (what was saved, for people and tools) and
``func.pkl``: a small :class:`ModelDirPredictor` holding the user's predict function and how to load the model.
The model-container runtime unpickles ``func.pkl`` as it does any closure; unpickling loads the model once from
the directory the runtime serves (``$CLIPPER_MODEL_PATH``), so a model that cannot be loaded shows as the
replica's load error, and each batch calls ``func(model, inputs)``. The core never imports a framework: only
this package's replica-side modules do, inside the replica.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import cloudpickle

from clipper_core.errors import DeploymentError
from clipper_deployers.python import FUNC_FILE, local_source_package

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
#: Where the runtime serves the model from (``ContainerConfig.model_path``); ``/model`` in images.
MODEL_PATH_ENV = "CLIPPER_MODEL_PATH"
DEFAULT_MODEL_PATH = "/model"


def require_framework(module: str, extra: str, deployer: str) -> ModuleType:
    """Import ``module`` or raise a ClipperException naming the ``clipper-deployers`` extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = (
            f"The {deployer} deployer needs the Python package {module!r}, which cannot be imported ({exc}). "
            f"Install it with: pip install 'clipper-deployers[{extra}]'"
        )
        raise DeploymentError(msg) from exc


def check_predict_function(func: Any, params: tuple[str, ...], deployer: str) -> None:
    """``func`` must be callable as ``func(*params)``; raises a ClipperException saying how it is called."""
    call = f"func({', '.join(params)})"
    if not callable(func):
        msg = f"The {deployer} deployer calls {call} once per batch; got a {type(func).__name__}, not a function"
        raise DeploymentError(msg)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # no signature to check (some built-ins): calls will tell
    try:
        signature.bind(*params)
    except TypeError as exc:
        name = getattr(func, "__qualname__", type(func).__name__)
        msg = f"The {deployer} deployer calls {call} once per batch, but {name}{signature} cannot be called so: {exc}"
        raise DeploymentError(msg) from exc


class ModelDirPredictor:
    """``func.pkl`` of a framework deployer: the predict function and the metadata that says how to load the model.

    Unpickling loads the model (:meth:`load_model`) from ``$CLIPPER_MODEL_PATH`` (``/model`` when unset), once per
    process; calling the object runs one batch. Subclasses live in importable modules of this package, so only the
    user's function is pickled by value.
    """

    def __init__(self, func: Callable[..., Any], metadata: dict[str, Any]) -> None:
        self.func = func
        self.metadata = dict(metadata)
        self.model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"func": self.func, "metadata": self.metadata}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.func = state["func"]
        self.metadata = state["metadata"]
        model_dir = os.environ.get(MODEL_PATH_ENV) or DEFAULT_MODEL_PATH
        self.model = self.load_model(model_dir)
        logger.info("Loaded %s model from %s", self.metadata.get("format", "?"), model_dir)

    def load_model(self, model_dir: str) -> Any:
        raise NotImplementedError

    def model_file(self, model_dir: str) -> str:
        return os.path.join(model_dir, self.metadata["file"])

    def __call__(self, inputs: Any) -> Any:
        return self.func(self.model, inputs)


def dump_by_value(obj: Any, path: str, sources: Iterable[Any]) -> None:
    """cloudpickle ``obj`` into ``path``, the non-installed packages ``sources`` come from pickled by value."""
    registered = set(cloudpickle.list_registry_pickle_by_value())
    packages = {m.__name__: m for m in (local_source_package(s) for s in sources) if m is not None}
    ours = [m for name, m in packages.items() if name not in registered]
    for module in ours:
        cloudpickle.register_pickle_by_value(module)
    try:
        with open(path, "wb") as f:
            cloudpickle.dump(obj, f)
    finally:
        for module in ours:
            cloudpickle.unregister_pickle_by_value(module)


def write_model_dir(
    name: str,
    predictor: ModelDirPredictor,
    save_model: Callable[[str], dict[str, Any]],
    by_value_sources: Iterable[Any] = (),
) -> str:
    """A fresh temporary model directory: ``save_model(dir)`` writes the model and returns its metadata, which goes
    into ``metadata.json`` and the predictor pickled as ``func.pkl``.

    :raises ClipperException: the model or the function cannot be saved; nothing is left on disk.
    """
    directory = tempfile.mkdtemp(suffix="clipper")
    try:
        metadata = save_model(directory)
        predictor.metadata.update(metadata)
        with open(os.path.join(directory, METADATA_FILE), "w") as f:
            json.dump(predictor.metadata, f, indent=2, sort_keys=True)
        try:
            dump_by_value(predictor, os.path.join(directory, FUNC_FILE), [predictor.func, *by_value_sources])
        except Exception as exc:
            msg = f"Could not serialize the predict function of model {name!r} with cloudpickle: {exc!r}"
            raise DeploymentError(msg) from exc
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    logger.info("Saved model %s (%s) to %s", name, predictor.metadata.get("format"), directory)
    return directory
