"""What the PySpark deployer and its replicas share: checks for pyspark and Java, model kinds, the session settings."""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from clipper_core.errors import DeploymentError

logger = logging.getLogger(__name__)

MODEL_DATA_DIR = "pyspark_model_data"
METADATA_FILE = "metadata.json"
CONTAINER_REF = "clipper_deployers.pyspark_container:PySparkContainer"
JAVA_PACKAGE = "openjdk-17-jre-headless"

#: Replica session settings, read from the replica's environment.
MASTER_ENV = "CLIPPER_SPARK_MASTER"
DRIVER_MEMORY_ENV = "CLIPPER_SPARK_DRIVER_MEMORY"
#: A JSON object of further Spark settings, e.g. ``{"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}``.
CONF_ENV = "CLIPPER_SPARK_CONF"
DEFAULT_MASTER = "local[1]"
DEFAULT_DRIVER_MEMORY = "512m"

ML = "ml"
MLLIB = "mllib"


def require_pyspark() -> ModuleType:
    """The ``pyspark`` module.

    :raises ClipperException: pyspark is not installed, with the extra that installs it.
    """
    try:
        return importlib.import_module("pyspark")
    except ImportError as exc:
        msg = (
            f"The PySpark deployer needs pyspark, which cannot be imported here ({exc}). "
            "Install it with: pip install 'clipper-deployers[pyspark]'"
        )
        raise DeploymentError(msg) from exc


def find_java(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``java`` Spark would start: ``$JAVA_HOME/bin/java``, else the first on ``PATH``."""
    env = os.environ if environ is None else environ
    home = env.get("JAVA_HOME")
    if home:
        candidate = Path(home, "bin", "java")
        return str(candidate) if os.access(candidate, os.X_OK) else None
    return shutil.which("java", path=env.get("PATH", os.defpath))


def require_java(environ: Mapping[str, str] | None = None) -> str:
    """The path of ``java``.

    :raises ClipperException: no Java runtime, naming the Debian package that provides one.
    """
    java = find_java(environ)
    if java is not None:
        return java
    env = os.environ if environ is None else environ
    where = f"JAVA_HOME={env['JAVA_HOME']} has no bin/java" if env.get("JAVA_HOME") else "no java on PATH"
    msg = (
        f"PySpark needs a Java runtime and there is none ({where}). Install one, e.g. on Debian or Ubuntu: "
        f"apt-get install {JAVA_PACKAGE} (or set JAVA_HOME to a Java 17 installation)"
    )
    raise DeploymentError(msg)


def class_reference(cls: type) -> str:
    """``module.QualName`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(reference: str) -> type:
    """The class ``module.QualName`` names (the module is the longest importable prefix).

    :raises ClipperException: nothing importable by that name.
    """
    parts = reference.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        if isinstance(obj, type):
            return obj
        break
    msg = f"Cannot import the Spark model class {reference!r}; is the same pyspark (and the module) installed here?"
    raise DeploymentError(msg)


def model_kind(cls: type) -> str | None:
    """``"ml"`` for ``pyspark.ml`` models (``save(path)`` / ``Class.load(path)``), ``"mllib"`` for
    ``pyspark.mllib`` models (``save(sc, path)`` / ``Class.load(sc, path)``), ``None`` for anything else."""
    from pyspark.ml.util import MLReadable, MLWritable

    if issubclass(cls, MLWritable) and issubclass(cls, MLReadable):
        return ML
    if cls.__module__.startswith("pyspark.mllib.") and callable(getattr(cls, "save", None)):
        if callable(getattr(cls, "load", None)):
            return MLLIB
    return None


def is_local(master: str) -> bool:
    """A ``local``/``local[N]``/``local[*]`` master (everything in this process)."""
    return master == "local" or master.startswith("local[")


def extra_config(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings of ``CLIPPER_SPARK_CONF`` (a JSON object of strings; empty when unset).

    :raises ClipperException: not a JSON object.
    """
    env = os.environ if environ is None else environ
    raw = env.get(CONF_ENV, "").strip()
    if not raw:
        return {}
    try:
        conf = json.loads(raw)
    except ValueError as exc:
        msg = f'{CONF_ENV} must be a JSON object of Spark settings, e.g. {{"spark.executor.cores": "1"}}: {exc}'
        raise DeploymentError(msg) from exc
    if not isinstance(conf, dict):
        msg = f"{CONF_ENV} must be a JSON object of Spark settings, got {type(conf).__name__}"
        raise DeploymentError(msg)
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in conf.items()}


def session_config(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The replica's ``SparkSession`` settings: one local core, no UI, small driver, loopback only, then
    ``CLIPPER_SPARK_CONF``."""
    env = os.environ if environ is None else environ
    master = env.get(MASTER_ENV) or DEFAULT_MASTER
    conf = {
        "spark.master": master,
        "spark.app.name": "clipper-pyspark",
        "spark.driver.memory": env.get(DRIVER_MEMORY_ENV) or DEFAULT_DRIVER_MEMORY,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if is_local(master):  # a remote master's executors must reach the driver: leave its address to Spark
        conf.update(
            {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.sql.shuffle.partitions": "1",
                "spark.default.parallelism": "1",
            }
        )
    conf.update(extra_config(env))
    return conf
