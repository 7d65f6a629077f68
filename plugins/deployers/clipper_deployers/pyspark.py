"""The PySpark deployer (reference §6.5): a fitted Spark model saved with Spark's own writer, and ``func``.

Same functions, parameters and defaults as ``clipper_admin.deployers.pyspark``. The model directory holds:

* ``func.pkl`` — ``func(spark, model, inputs)`` pickled with cloudpickle; it returns one output per input;
* ``pyspark_model_data/`` — ``model.save(path)`` for ``pyspark.ml`` models and ``PipelineModel``\\ s,
  ``model.save(sc, path)`` for ``pyspark.mllib`` models;
* ``metadata.json`` — ``{"model_class": "<module.Class>", ...}`` plus the ``container`` class that serves it
  (:class:`clipper_deployers.pyspark_container.PySparkContainer`), which the model-container runtime loads.

Each replica keeps one local ``SparkSession`` and loads the model once with its class's own loader.
Everything that can be checked here (pyspark installed, a fitted Spark model, ``func``'s parameters) is checked
before anything is built. ``pyspark_model`` and ``sc`` default to ``None`` only so that a call without them
gets a clear error; ``sc`` is needed for ``pyspark.mllib`` models alone.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipper_core.errors import DeploymentError
from clipper_deployers import _spark
from clipper_deployers._deploy import DeployOptions, clipper_image, deploy_dir, endpoint
from clipper_deployers.python import save_python_function

if TYPE_CHECKING:
    from collections.abc import Callable

    from clipper_core.admin import ClipperConnection

logger = logging.getLogger(__name__)

PLUGIN_NAME = "pyspark"
BASE_IMAGE_NAME = "pyspark-container"


def default_pyspark_image() -> str:
    """What ``base_image="default"`` stands for: ``<registry>/pyspark-container:<version>``."""
    return clipper_image(BASE_IMAGE_NAME)


def check_predict_function(func: Any) -> None:
    """``func`` must be callable as ``func(spark, model, inputs)``.

    :raises ClipperException: not callable, or its parameters do not take exactly those three arguments.
    """
    if not callable(func):
        msg = f"func must be a function func(spark, model, inputs); got {type(func).__name__}"
        raise DeploymentError(msg)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin or extension callable without a signature: the replica will tell
    try:
        signature.bind(object(), object(), object())
    except TypeError as exc:
        msg = (
            f"func must take three arguments, func(spark, model, inputs), and return one output per input; "
            f"{getattr(func, '__qualname__', func)!r} has the signature {signature} ({exc})"
        )
        raise DeploymentError(msg) from None


def check_pyspark_model(pyspark_model: Any) -> tuple[str, str]:
    """The model's class reference and kind (``"ml"`` or ``"mllib"``).

    :raises ClipperException: pyspark missing, an unfitted estimator, or not a Spark model that Spark can save and
        load, or a class a replica cannot import.
    """
    _spark.require_pyspark()
    from pyspark.ml import Estimator

    cls = type(pyspark_model)
    if isinstance(pyspark_model, Estimator):
        msg = (
            f"pyspark_model is an estimator ({_spark.class_reference(cls)}), not a fitted model: deploy what its "
            "fit(dataframe) returns"
        )
        raise DeploymentError(msg)
    kind = _spark.model_kind(cls)
    if kind is None:
        msg = (
            "pyspark_model must be a fitted pyspark.ml model, a PipelineModel or a pyspark.mllib model that Spark "
            f"can save and load; got {_spark.class_reference(cls)}"
        )
        raise DeploymentError(msg)
    reference = _spark.class_reference(cls)
    module = importlib.import_module(cls.__module__) if cls.__module__ != "__main__" else None
    if module is None or _resolve(module, cls.__qualname__) is not cls:
        msg = (
            f"The Spark model class {reference} is not importable by that name, so a replica could not load the "
            "model; define it in an installed module (or pass pkgs_to_install)"
        )
        raise DeploymentError(msg)
    return reference, kind


def _resolve(module: Any, qualname: str) -> Any:
    obj = module
    for attr in qualname.split("."):
        obj = getattr(obj, attr, None)
    return obj


def _active_spark_context() -> Any:
    from pyspark import SparkContext

    return SparkContext._active_spark_context


def save_pyspark_model(serialization_dir: str, pyspark_model: Any, sc: Any, reference: str, kind: str) -> None:
    """Write ``pyspark_model_data/`` and ``metadata.json`` into ``serialization_dir``.

    :raises DeploymentError: Spark could not save the model, or wrote it somewhere other than this machine's disk.
    """
    import pyspark

    data_dir = Path(serialization_dir, _spark.MODEL_DATA_DIR)
    # file:// even when the context's default filesystem is not local; unescaped, as Hadoop paths expect
    uri = "file://" + str(data_dir.resolve())
    try:
        if kind == _spark.MLLIB:
            sc = sc if sc is not None else _active_spark_context()
            if sc is None:
                msg = f"Saving the pyspark.mllib model {reference} needs its SparkContext: pass sc"
                raise DeploymentError(msg)
            pyspark_model.save(sc, uri)
        else:
            pyspark_model.save(uri)
    except DeploymentError:
        raise
    except Exception as exc:
        msg = f"Spark could not save the model {reference} into {data_dir}: {type(exc).__name__}: {exc}"
        raise DeploymentError(msg) from exc
    if not data_dir.is_dir():
        msg = f"Spark reported saving the model {reference} but nothing was written to {data_dir}"
        raise DeploymentError(msg)
    metadata = {
        "model_class": reference,
        "model_kind": kind,
        "pyspark_version": pyspark.__version__,
        "container": _spark.CONTAINER_REF,
    }
    with open(os.path.join(serialization_dir, _spark.METADATA_FILE), "w", encoding="utf-8") as fh:
        json.dump(metadata, fh, indent=2, sort_keys=True)
        fh.write("\n")


def _missing_model_error() -> DeploymentError:
    msg = (
        "The pyspark deployer needs the fitted Spark model and its SparkContext: call "
        "deploy_pyspark_model(clipper_conn, name, version, input_type, func, pyspark_model, sc) from Python"
    )
    return DeploymentError(msg)


def _checked_model(func: Any, pyspark_model: Any) -> tuple[str, str]:
    """The checks made before anything is built; the model's class reference and kind."""
    if pyspark_model is None:
        raise _missing_model_error()
    check_predict_function(func)
    return check_pyspark_model(pyspark_model)


def _deploy_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    pyspark_model: Any,
    sc: Any,
    options: DeployOptions,
) -> None:
    reference, kind = _checked_model(func, pyspark_model)
    directory = save_python_function(name, func)
    try:
        save_pyspark_model(directory, pyspark_model, sc, reference, kind)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    deploy_dir(clipper_conn, name, version, input_type, directory, options, default_pyspark_image())
    logger.info("PySpark model %s:%s (%s) deployed", name, version, reference)


def deploy_pyspark_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    func: Callable[..., Any],
    pyspark_model: Any = None,
    sc: Any = None,
    base_image: str = "default",
    labels: list[str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
) -> None:
    """Deploy ``pyspark_model`` with ``func(spark, model, inputs)`` as model ``name:version``.

    :param sc: the ``SparkContext`` the model lives in (needed to save ``pyspark.mllib`` models).
    :param base_image: ``"default"`` is ``<registry>/pyspark-container:<version>`` (Docker and Kubernetes managers;
        ``clipper images build --only pyspark-container`` builds it); local clusters run the replica with this
        interpreter, which needs pyspark and a Java runtime.
    :raises ClipperException: a check failed (nothing was built), or building or deploying failed; the temporary
        model directory is always removed.
    """
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    _deploy_model(clipper_conn, name, version, input_type, func, pyspark_model, sc, options)


#: The registry facade calls ``deployer.deploy(...)``.
deploy = deploy_pyspark_model


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    func: Callable[..., Any],
    pyspark_model: Any = None,
    sc: Any = None,
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
    """Register app ``name``, deploy ``pyspark_model`` as model ``name`` and link the two.

    The model and ``func`` are checked before the application is registered.
    """
    _checked_model(func, pyspark_model)
    options = DeployOptions(base_image, labels, registry, num_replicas, batch_size, pkgs_to_install)
    endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: _deploy_model(clipper_conn, name, version, input_type, func, pyspark_model, sc, options),
    )
