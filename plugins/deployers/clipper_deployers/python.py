"""The Python closure deployer (reference §6.5): pickle a function with cloudpickle and deploy it as a model.

Same functions, parameters and defaults as ``clipper_admin.deployers.python``. Differences: any Python 3 is
accepted (local clusters run the closure with the deploying interpreter), and cloudpickle uses its default protocol.
"""

from __future__ import annotations

import logging
import os
import shutil
import site
import sys
import sysconfig
import tempfile
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cloudpickle

from clipper_core.container_manager import default_base_image
from clipper_core.errors import DeploymentError
from clipper_deployers._deploy import DeployOptions, deploy_dir, endpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from clipper_core.admin import ClipperConnection

logger = logging.getLogger(__name__)

PLUGIN_NAME = "python_closure"
FUNC_FILE = "func.pkl"


def _installed_roots() -> list[str]:
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.add(site.getusersitepackages())
    return [os.path.realpath(p) for p in paths if p]


def local_source_package(func: Any) -> ModuleType | None:
    """The top-level package ``func`` comes from, when that is plain source rather than an installed package.

    A replica cannot import such a module (a test file, a helper next to a script), so its functions must be
    pickled by value. Functions of ``__main__`` are pickled by value by cloudpickle anyway.
    """
    modname = getattr(func, "__module__", None) or ""
    if not modname or modname == "__main__":
        return None
    module = sys.modules.get(modname.partition(".")[0])
    origin = getattr(module, "__file__", None)
    if module is None or origin is None:
        return None  # built-in or namespace package: leave it to cloudpickle
    origin = os.path.realpath(origin)
    if any(origin.startswith(root + os.sep) for root in _installed_roots()):
        return None
    return module


def save_python_function(name: str, func: Callable[..., Any]) -> str:
    """Pickle ``func`` into ``func.pkl`` of a fresh temporary directory; returns the directory.

    Functions from non-installed source modules are pickled by value, so the replica does not need to import them.
    """
    serialization_dir = tempfile.mkdtemp(suffix="clipper")
    logger.info("Saving function to %s", serialization_dir)
    by_value = local_source_package(func)
    if by_value is not None and by_value.__name__ in cloudpickle.list_registry_pickle_by_value():
        by_value = None  # already registered by the caller: leave the registration alone
    try:
        if by_value is not None:
            cloudpickle.register_pickle_by_value(by_value)
        try:
            with open(os.path.join(serialization_dir, FUNC_FILE), "wb") as f:
                cloudpickle.dump(func, f)
        finally:
            if by_value is not None:
                cloudpickle.unregister_pickle_by_value(by_value)
    except Exception as exc:
        shutil.rmtree(serialization_dir, ignore_errors=True)
        msg = f"Could not serialize the predict function of model {name!r} with cloudpickle: {exc!r}"
        raise DeploymentError(msg) from exc
    logger.info("Serialized and supplied predict function")
    return serialization_dir


def _deploy_closure(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    options: DeployOptions,
) -> None:
    directory = save_python_function(name, func)
    deploy_dir(clipper_conn, name, version, input_type, directory, options, default_base_image())
    logger.info("Python closure %s:%s deployed", name, version)


def deploy_python_closure(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    base_image: str = "default",
    labels: list[str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Deploy ``func`` (a list of inputs -> a list of outputs, one per input) as model ``name:version``.

    :param base_image: image the model runs in; ``"default"`` picks the Python closure container
        (:func:`default_base_image`). Local clusters record it and run the closure with this interpreter.
    :param registry: container registry the built model image is pushed to (Docker/Kubernetes managers).
    :param pkgs_to_install: pip requirements installed for the model (a per-model venv on local clusters).
    :raises ClipperException: on any build or deploy error; the temporary model directory is always removed.
    """
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    _deploy_closure(clipper_conn, name, version, input_type, func, options)


#: The registry facade calls ``deployer.deploy(...)``.
deploy = deploy_python_closure


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    func: Callable[..., Any],
    default_output: str = "None",
    version: Any = 1,
    slo_micros: int = 3000000,
    labels: list[str] | None = None,
    registry: str | None = None,
    base_image: str = "default",
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Register app ``name``, deploy ``func`` as model ``name`` and link the two."""
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: _deploy_closure(clipper_conn, name, version, input_type, func, options),
    )
