"""The replica side of the PySpark deployer: one local ``SparkSession``, the model loaded once, ``func`` per batch.

``python -m clipper_core.container`` builds :class:`PySparkContainer` for a model directory whose
``metadata.json`` names it (see :mod:`clipper_core.container.loader`). Settings, from the replica's environment:
``CLIPPER_SPARK_MASTER`` (default ``local[1]``), ``CLIPPER_SPARK_DRIVER_MEMORY`` (default ``512m``) and
``CLIPPER_SPARK_CONF`` (a JSON object of further Spark settings); the session has no UI and binds to loopback.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from clipper_core.container.base import ModelContainerBase
from clipper_core.container.closure import load_closure
from clipper_core.errors import DeploymentError
from clipper_core.files import read_json
from clipper_deployers import _spark

logger = logging.getLogger(__name__)


def start_session() -> Any:
    """A new local ``SparkSession`` with :func:`clipper_deployers._spark.session_config`, stopped at exit.

    :raises ClipperException: pyspark or Java is missing.
    """
    _spark.require_pyspark()
    _spark.require_java()
    from pyspark.sql import SparkSession

    conf = _spark.session_config()
    os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    if _spark.is_local(conf["spark.master"]):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    atexit.register(spark.stop)
    return spark


def load_spark_model(spark: Any, model_path: str, metadata: dict[str, Any]) -> Any:
    """Load ``pyspark_model_data/`` with the loader of the class ``metadata["model_class"]`` names.

    :raises ClipperException: no or unknown class, or not a Spark model class.
    :raises Exception: whatever Spark raises while loading.
    """
    reference = metadata.get("model_class")
    if not isinstance(reference, str) or not reference:
        msg = f"{_spark.METADATA_FILE} in {model_path} does not name the model_class"
        raise DeploymentError(msg)
    cls = _spark.import_class(reference)
    kind = _spark.model_kind(cls)
    if kind is None:
        msg = f"{reference} is not a Spark model class with a loader (pyspark.ml or pyspark.mllib)"
        raise DeploymentError(msg)
    uri = os.path.realpath(os.path.join(model_path, _spark.MODEL_DATA_DIR))
    if not os.path.isdir(uri):
        msg = f"The model directory {model_path} has no {_spark.MODEL_DATA_DIR}/"
        raise DeploymentError(msg)
    uri = "file://" + uri
    saved_with = metadata.get("pyspark_version")
    running = _spark.require_pyspark().__version__
    if saved_with and saved_with != running:
        logger.warning("The model was saved with pyspark %s and is loaded with pyspark %s", saved_with, running)
    model = cls.load(spark.sparkContext, uri) if kind == _spark.MLLIB else cls.load(uri)  # type: ignore[attr-defined]
    logger.info("Loaded %s model %s from %s", kind, reference, uri)
    return model


class PySparkContainer(ModelContainerBase):
    """Calls ``func(spark, model, inputs)`` once per batch; the runtime checks the result and converts with ``str``."""

    def __init__(self, model_path: str | os.PathLike[str]) -> None:
        path = os.fspath(model_path)
        metadata = read_json(Path(path, _spark.METADATA_FILE))
        if metadata is None:
            msg = f"{path} has no readable {_spark.METADATA_FILE}"
            raise DeploymentError(msg)
        self.predict_func = load_closure(path)
        self.spark = start_session()
        self.model = load_spark_model(self.spark, path, metadata)

    def predict(self, inputs: Any) -> Any:
        return self.predict_func(self.spark, self.model, inputs)

    predict_ints = predict
    predict_floats = predict
    predict_doubles = predict
    predict_bytes = predict
    predict_strings = predict
