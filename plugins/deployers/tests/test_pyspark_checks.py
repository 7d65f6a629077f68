"""The PySpark deployer's checks that need no JVM: registration, signatures, missing pyspark or Java, bad metadata."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from clipper_deployers import _spark
from clipper_deployers import pyspark as pyspark_deployer
from spark_test_support import needs_pyspark

from clipper_core.errors import ClipperException
from clipper_core.registry import PluginHost


def predict(spark: Any, model: Any, inputs: Any) -> list[str]:
    return [str(x) for x in inputs]


def test_registered_as_the_pyspark_deployer_with_the_original_signatures() -> None:
    import clipper_admin.deployers.pyspark as compat

    deployers = PluginHost().deployers()
    assert "pyspark" in deployers.names()
    assert deployers.get("pyspark") is pyspark_deployer
    assert compat.deploy_pyspark_model is pyspark_deployer.deploy_pyspark_model
    assert compat.create_endpoint is pyspark_deployer.create_endpoint
    deploy = inspect.signature(pyspark_deployer.deploy_pyspark_model)
    assert list(deploy.parameters) == [
        "clipper_conn", "name", "version", "input_type", "func", "pyspark_model", "sc", "base_image", "labels",
        "registry", "num_replicas", "batch_size", "pkgs_to_install",
    ]  # fmt: skip
    defaults = {k: p.default for k, p in deploy.parameters.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {
        "pyspark_model": None, "sc": None, "base_image": "default", "labels": None, "registry": None,
        "num_replicas": 1, "batch_size": -1, "pkgs_to_install": None,
    }  # fmt: skip
    endpoint = inspect.signature(pyspark_deployer.create_endpoint)
    assert list(endpoint.parameters)[:9] == [
        "clipper_conn", "name", "input_type", "func", "pyspark_model", "sc", "default_output", "version", "slo_micros",
    ]  # fmt: skip
    assert [endpoint.parameters[k].default for k in ("default_output", "version", "slo_micros")] == ["None", 1, 3000000]


def test_default_image_is_the_pyspark_container() -> None:
    from clipper_core import __version__

    assert pyspark_deployer.default_pyspark_image().endswith(f"/pyspark-container:{__version__}")


@pytest.mark.parametrize("func", [lambda xs: xs, lambda spark, model: model, lambda a, b, c, d: a, "not callable"])
def test_predict_function_must_take_spark_model_inputs(func: Any) -> None:
    # Checked before the model: nothing is saved, built or registered.
    with pytest.raises(ClipperException, match=r"func"):
        pyspark_deployer.deploy_pyspark_model(None, "m", 1, "doubles", func, object())  # type: ignore[arg-type]


def test_predict_function_signatures_that_fit() -> None:
    pyspark_deployer.check_predict_function(predict)
    pyspark_deployer.check_predict_function(lambda *args: args)
    pyspark_deployer.check_predict_function(lambda spark, model, inputs, extra=1: inputs)


def test_a_non_spark_object_is_refused() -> None:
    needs_pyspark()
    with pytest.raises(ClipperException, match=r"pyspark_model must be a fitted pyspark.ml model.*got builtins.dict"):
        pyspark_deployer.deploy_pyspark_model(None, "m", 1, "doubles", predict, {"weights": [1.0]})  # type: ignore[arg-type]


def test_missing_pyspark_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pyspark"] = None  # as if it were not installed
        from clipper_core.errors import ClipperException
        from clipper_deployers import pyspark as d
        try:
            d.deploy_pyspark_model(None, "m", 1, "doubles", lambda s, m, x: x, object())
        except ClipperException as exc:
            print(exc.msg)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "needs pyspark" in out and "pip install 'clipper-deployers[pyspark]'" in out, out


def test_missing_java_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(ClipperException, match=r"no java on PATH.*apt-get install openjdk-17-jre-headless"):
        _spark.require_java({"PATH": str(tmp_path)})
    with pytest.raises(ClipperException, match=r"JAVA_HOME=/nonexistent has no bin/java.*openjdk-17-jre-headless"):
        _spark.require_java({"JAVA_HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})
    fake = tmp_path / "jdk" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text("#!/bin/sh\n")
    (fake / "java").chmod(0o755)
    assert _spark.require_java({"JAVA_HOME": str(tmp_path / "jdk")}) == str(fake / "java")


def _model_dir(tmp_path: Path, metadata: dict[str, Any]) -> Path:
    model = tmp_path / "model"
    (model / _spark.MODEL_DATA_DIR).mkdir(parents=True)
    (model / "metadata.json").write_text(json.dumps(metadata))
    (model / "func.pkl").write_bytes(cloudpickle.dumps(predict))
    return model


def test_replica_without_java_fails_to_load_with_the_package_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_pyspark()
    from clipper_deployers.pyspark_container import PySparkContainer

    model = _model_dir(tmp_path, {"model_class": "pyspark.ml.classification.LogisticRegressionModel"})
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClipperException, match="openjdk-17-jre-headless"):
        PySparkContainer(model)


@pytest.mark.parametrize(
    ("model_class", "error"),
    [
        ("pyspark.ml.classification.NoSuchModel", "Cannot import the Spark model class"),
        ("pyspark.sql.SparkSession", "is not a Spark model class with a loader"),
        (None, "does not name the model_class"),
    ],
)
def test_replica_refuses_a_model_class_it_cannot_load(tmp_path: Path, model_class: str | None, error: str) -> None:
    needs_pyspark()
    from clipper_deployers.pyspark_container import load_spark_model

    model = _model_dir(tmp_path, {"model_class": model_class} if model_class else {})
    with pytest.raises(ClipperException, match=error):
        load_spark_model(None, str(model), json.loads((model / "metadata.json").read_text()))


def test_session_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _spark.session_config({})
    assert conf["spark.master"] == "local[1]" and conf["spark.ui.enabled"] == "false"
    assert conf["spark.driver.memory"] == "512m" and conf["spark.driver.bindAddress"] == "127.0.0.1"
    env = {
        "CLIPPER_SPARK_MASTER": "spark://10.0.0.1:7077",
        "CLIPPER_SPARK_DRIVER_MEMORY": "2g",
        "CLIPPER_SPARK_CONF": '{"spark.executor.cores": 2, "spark.ui.enabled": "true"}',
    }
    conf = _spark.session_config(env)
    assert conf["spark.master"] == "spark://10.0.0.1:7077" and "spark.driver.bindAddress" not in conf
    assert conf["spark.driver.memory"] == "2g" and conf["spark.executor.cores"] == "2"
    assert conf["spark.ui.enabled"] == "true"
    with pytest.raises(ClipperException, match="CLIPPER_SPARK_CONF must be a JSON object"):
        _spark.session_config({"CLIPPER_SPARK_CONF": "[1]"})
