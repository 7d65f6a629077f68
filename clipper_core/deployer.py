"""What a deployer plugin provides (``clipper_register_deployers``), and loading a predict function by reference.

A deployer is any object — usually a module — with a unique ``PLUGIN_NAME`` and two functions with the original's
signatures (reference §6.5)::

    deploy(clipper_conn, name, version, input_type, func, **options) -> None
    create_endpoint(clipper_conn, name, input_type, func, default_output="None", version=1,
                    slo_micros=3000000, **options) -> None

``clipper deploy`` looks deployers up by ``PLUGIN_NAME`` through :meth:`PluginHost.deployers`. A deployer of framework
models may also set ``MODEL_PARAMETER`` (e.g. ``"pytorch_model"``): ``clipper deploy --model REF`` then passes the
object REF names (:func:`load_model_ref`) as that keyword argument.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from clipper_core.errors import DeploymentError


@runtime_checkable
class ModelDeployer(Protocol):
    """The interface of a deployer plugin."""

    PLUGIN_NAME: str

    def deploy(self, clipper_conn: Any, name: str, version: Any, input_type: str, func: Any, **options: Any) -> None:  # noqa: ANN401
        """Build and deploy ``func`` (or a framework model) as ``name:version``."""

    def create_endpoint(self, clipper_conn: Any, name: str, input_type: str, func: Any, **options: Any) -> None:  # noqa: ANN401
        """Register an application ``name``, deploy ``func`` as a model of the same name and link them."""


def load_function(ref: str) -> Callable[..., Any]:
    """The callable ``ref`` names: ``package.module:attr`` (importable) or ``path/to/file.py:attr``.

    :raises DeploymentError: the reference is malformed, the module cannot be loaded or the attribute is missing
        or not callable.
    """
    where, attr, found = _load_attr(ref, "Function", "function")
    func: object = found
    if not callable(func):
        msg = f"{where!r} has no callable named {attr!r}"
        raise DeploymentError(msg)
    return func


def load_model_ref(ref: str) -> Any:  # noqa: ANN401 - any framework's model
    """What ``clipper deploy --model`` passes: the path itself when ``ref`` is an existing file other than a ``.py``
    (an ``.onnx`` file, say), else the object ``package.module:attr`` or ``path/to/file.py:attr`` names.

    :raises DeploymentError: as :func:`load_function`, or the attribute is missing.
    """
    if not ref.endswith(".py") and Path(ref).is_file():
        return ref
    where, attr, obj = _load_attr(ref, "Model", "model")
    if obj is None:
        msg = f"{where!r} has no attribute named {attr!r}"
        raise DeploymentError(msg)
    return obj


def _load_attr(ref: str, kind: str, noun: str) -> tuple[str, str, Any]:
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        msg = f"{kind} reference {ref!r} must look like 'package.module:{noun}' or 'path/to/file.py:{noun}'"
        raise DeploymentError(msg)
    try:
        module = _load_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except (ImportError, OSError, SyntaxError) as exc:
        msg = f"Cannot load {where!r} for {noun} reference {ref!r}: {exc}"
        raise DeploymentError(msg) from exc
    return where, attr, getattr(module, attr, None)


def _load_file(path: Path) -> Any:  # noqa: ANN401 - a module
    if not path.is_file():
        msg = f"No such file: {path}"
        raise OSError(msg)
    name = f"clipper_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        msg = f"{path} is not a Python module"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    # In sys.modules, so that deployers can pickle its functions by value (it is not installed anywhere).
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
