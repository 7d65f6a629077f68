"""PySpark models served by a real local cluster: every output equals Spark's own ``transform`` / ``predict``.

One SparkSession in this process trains the models on a dozen rows; each deployed version runs in a replica
process with its own local SparkSession. Models are stopped after each test, so few JVMs run at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from spark_test_support import local_cluster, replica_log

from clipper_admin import ClipperException
from clipper_admin.deployers import pyspark as pyspark_deployer
from clipper_core.files import read_json
from clipper_core.testing import wait_until

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

SLO_MICROS = 30_000_000
STARTUP_TIMEOUT = 180.0

DOUBLES = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.4, 0.6], [0.7, 0.2]]
TEXTS = ["spark is fast", "hadoop map reduce", "spark streaming", "old hadoop jobs", "spark sql", "mapreduce"]
INTS = [[0, 5], [5, 0], [1, 4], [4, 1], [2, 3], [3, 1]]


# ---------------------------------------------------------------- predict functions (func(spark, model, inputs))


def predict_vectors(spark: Any, model: Any, inputs: Any) -> list[str]:
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame([(Vectors.dense([float(v) for v in x]),) for x in inputs], ["features"])
    rows = model.transform(df).select("prediction", "probability").collect()
    return [json.dumps([r.prediction, float(r.probability[1])]) for r in rows]


def predict_texts(spark: Any, model: Any, inputs: Any) -> list[str]:
    df = spark.createDataFrame([(bytes(x).decode("utf-8"),) for x in inputs], ["text"])
    rows = model.transform(df).select("prediction", "probability").collect()
    return [json.dumps([r.prediction, float(r.probability[1])]) for r in rows]


def predict_mllib(spark: Any, model: Any, inputs: Any) -> list[str]:
    if any(min(x) < 0 for x in inputs):
        msg = "negative feature values are not supported"
        raise ValueError(msg)
    return [str(model.predict([float(v) for v in x])) for x in inputs]


# ---------------------------------------------------------------- models, trained once


def _rows(flip: bool) -> list[tuple[Any, float]]:
    from pyspark.ml.linalg import Vectors

    rows = []
    for i in range(12):
        a, b = (i % 6) / 5.0, 1.0 - (i % 6) / 5.0 + (0.05 if i >= 6 else -0.05)
        label = 1.0 if a > b else 0.0
        rows.append((Vectors.dense([a, b]), 1.0 - label if flip else label))
    return rows


@pytest.fixture(scope="module")
def ml_models(spark: Any) -> tuple[Any, Any]:
    from pyspark.ml.classification import LogisticRegression

    lr = LogisticRegression(maxIter=5, regParam=0.01)
    v1 = lr.fit(spark.createDataFrame(_rows(flip=False), ["features", "label"]))
    v2 = lr.fit(spark.createDataFrame(_rows(flip=True), ["features", "label"]))
    return v1, v2


# ---------------------------------------------------------------- helpers


def predict_batch(conn: Any, app: str, batch: list[Any]) -> list[dict[str, Any]]:
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input_batch": batch}, timeout=60)
    assert r.status_code == 200, r.text
    return list(r.json()["batch_predictions"])


def wait_for_outputs(conn: Any, app: str, batch: list[Any], expected: list[Any], model: str, version: str) -> None:
    """Poll until every output of ``batch`` is non-default and equal to ``expected``."""

    def matches() -> bool:
        got = predict_batch(conn, app, batch)
        return all(not p["default"] for p in got) and [p["output"] for p in got] == expected

    try:
        wait_until(matches, STARTUP_TIMEOUT, f"{app} to answer with {model}:{version}", interval=0.5)
    except AssertionError as exc:
        got = predict_batch(conn, app, batch)
        msg = f"{exc}\nlast answers: {got}\nexpected: {expected}\n{replica_log(conn, model, version)}"
        raise AssertionError(msg) from None


def transform_expected(spark: Any, model: Any, df: Any) -> list[list[float]]:
    rows = model.transform(df).select("prediction", "probability").collect()
    return [[r.prediction, float(r.probability[1])] for r in rows]


# ---------------------------------------------------------------- tests


def test_ml_logistic_regression_two_versions_and_roll_back(spark: Any, cluster: Any, ml_models: tuple) -> None:
    from pyspark.ml.linalg import Vectors

    v1, v2 = ml_models
    df = spark.createDataFrame([(Vectors.dense(x),) for x in DOUBLES], ["features"])
    expected1, expected2 = transform_expected(spark, v1, df), transform_expected(spark, v2, df)
    assert [e[0] for e in expected1] != [e[0] for e in expected2]  # the versions are told apart by their outputs

    pyspark_deployer.create_endpoint(
        cluster, "spark-ml", "doubles", predict_vectors, v1, spark.sparkContext, slo_micros=SLO_MICROS
    )
    try:
        wait_for_outputs(cluster, "spark-ml", DOUBLES, expected1, "spark-ml", "1")
        pyspark_deployer.deploy_pyspark_model(
            cluster, "spark-ml", 2, "doubles", predict_vectors, v2, spark.sparkContext
        )
        wait_for_outputs(cluster, "spark-ml", DOUBLES, expected2, "spark-ml", "2")
        cluster.set_model_version("spark-ml", "1")
        wait_for_outputs(cluster, "spark-ml", DOUBLES, expected1, "spark-ml", "1")
        info = cluster.get_model_info("spark-ml", "1")
        assert info is not None and info["is_current_version"]
    finally:
        cluster.stop_models(["spark-ml"])


def test_pipeline_on_strings(spark: Any, cluster: Any) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import HashingTF, Tokenizer

    train = [(t, 1.0 if "spark" in t else 0.0) for t in TEXTS + ["spark ml", "hadoop hdfs", "spark rdd", "yarn"]]
    pipeline = Pipeline(
        stages=[
            Tokenizer(inputCol="text", outputCol="words"),
            HashingTF(inputCol="words", outputCol="features", numFeatures=64),
            LogisticRegression(maxIter=5, regParam=0.01),
        ]
    )
    model = pipeline.fit(spark.createDataFrame(train, ["text", "label"]))
    queries = ["spark", "hadoop", "spark and hadoop", "mapreduce jobs", "unknown words"]
    expected = transform_expected(spark, model, spark.createDataFrame([(t,) for t in queries], ["text"]))

    pyspark_deployer.create_endpoint(
        cluster, "spark-pipeline", "strings", predict_texts, model, spark.sparkContext, slo_micros=SLO_MICROS
    )
    try:
        wait_for_outputs(cluster, "spark-pipeline", queries, expected, "spark-pipeline", "1")
    finally:
        cluster.stop_models(["spark-pipeline"])


def test_mllib_model_on_ints_and_a_predict_function_that_raises(spark: Any, cluster: Any) -> None:
    from pyspark.mllib.classification import LogisticRegressionWithLBFGS
    from pyspark.mllib.regression import LabeledPoint

    sc = spark.sparkContext
    points = [LabeledPoint(1.0 if a > b else 0.0, [float(a), float(b)]) for a, b in INTS + [[6, 1], [1, 6]] * 3]
    model = LogisticRegressionWithLBFGS.train(sc.parallelize(points, 1), iterations=5)
    expected = [model.predict([float(v) for v in x]) for x in INTS]
    assert set(expected) == {0, 1}

    pyspark_deployer.create_endpoint(
        cluster, "spark-mllib", "ints", predict_mllib, model, sc, default_output="-1", slo_micros=SLO_MICROS
    )
    try:
        wait_for_outputs(cluster, "spark-mllib", INTS, expected, "spark-mllib", "1")
        pid = replica_pid(cluster, "spark-mllib:1")
        # Only the input the function raises for gets the default output, with the error named.
        bad, good = predict_batch(cluster, "spark-mllib", [[-1, 2], [3, 4]])
        assert bad["default"] and bad["output"] == -1, bad
        assert "ValueError: negative feature values are not supported" in bad["default_explanation"], bad
        assert not good["default"] and good["output"] == model.predict([3.0, 4.0]), good
        # The replica stays up and keeps serving.
        assert [p["output"] for p in predict_batch(cluster, "spark-mllib", INTS)] == expected
        assert replica_pid(cluster, "spark-mllib:1") == pid
    finally:
        cluster.stop_models(["spark-mllib"])


def replica_pid(conn: Any, key: str) -> int:
    """The pid of the running replica of ``key`` (``name:version``), from the local cluster's processes.json."""
    state = read_json(Path(conn.cm.cluster_dir) / "processes.json") or {}
    entries = [e for e in state.get("replicas", {}).get(key, []) if not e.get("stopping")]
    assert len(entries) == 1, state
    return int(entries[0]["pid"])


# ---------------------------------------------------------------- bad input, refused before anything is built


def test_bad_input_is_refused_before_anything_is_built(spark: Any, cluster: Any, ml_models: tuple) -> None:
    from pyspark.ml.classification import LogisticRegression

    model = ml_models[0]
    sc = spark.sparkContext
    with pytest.raises(ClipperException, match="pyspark_model must be a fitted pyspark.ml model"):
        pyspark_deployer.deploy_pyspark_model(cluster, "bad-model", 1, "doubles", predict_vectors, {"w": 1}, sc)
    with pytest.raises(ClipperException, match="is an estimator .* not a fitted model"):
        pyspark_deployer.deploy_pyspark_model(
            cluster, "bad-model", 1, "doubles", predict_vectors, LogisticRegression(), sc
        )
    with pytest.raises(ClipperException, match=r"func must take three arguments, func\(spark, model, inputs\)"):
        pyspark_deployer.deploy_pyspark_model(cluster, "bad-model", 1, "doubles", lambda xs: xs, model, sc)
    with pytest.raises(ClipperException, match="func must take three arguments"):
        pyspark_deployer.create_endpoint(cluster, "bad-app", "doubles", lambda s, m: m, model, sc)
    with pytest.raises(ClipperException, match="needs the fitted Spark model"):
        pyspark_deployer.deploy_pyspark_model(cluster, "bad-model", 1, "doubles", predict_vectors)
    assert not [m for m in cluster.get_all_models() if m.startswith("bad-model:")]
    assert "bad-app" not in cluster.get_all_apps()
    assert not (Path(cluster.cm.cluster_dir) / "models" / "bad-model").exists()


def test_replica_without_java_fails_the_deploy_naming_the_package(spark: Any, ml_models: tuple, tmp_path: Path) -> None:
    with local_cluster(tmp_path / "home", "pyspark-nojava", {"JAVA_HOME": str(tmp_path / "no-jdk")}) as conn:
        with pytest.raises(ClipperException, match=r"failed to load.*apt-get install openjdk-17-jre-headless"):
            pyspark_deployer.deploy_pyspark_model(
                conn, "nojava", 1, "doubles", predict_vectors, ml_models[0], spark.sparkContext
            )
