"""Framework models served by a real Docker cluster from the framework images ``clipper images build`` makes.

The images (``pyspark-container`` on a debootstrap-made base with OpenJDK 17, ``pytorch-container``,
``onnx-container``) are built offline, like the others; each model image is built ``FROM`` its framework image and
every output equals what the framework itself computes here, in the test process.
Without a Docker daemon these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from framework_cluster import make_mlp, output_row, require
from spark_test_support import unavailable

from clipper_admin import ClipperConnection, ClipperException
from clipper_core.admin import CLIPPER_REGISTRY
from clipper_core.container_manager import CLIPPER_DOCKER_LABEL, CLIPPER_MODEL_CONTAINER_LABEL, model_label
from clipper_core.ports import free_ports
from clipper_core.testing import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.spark, pytest.mark.torch, pytest.mark.onnx]

CLUSTER = f"fw{os.getpid()}"
SLO_MICROS = 30_000_000
STARTUP_TIMEOUT = 240.0
FRAMEWORK_IMAGES = ("pyspark-container", "pytorch-container", "onnx-container")
DOUBLES = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.4, 0.6], [0.7, 0.2]]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    try:
        from clipper_docker import connect_docker
    except ImportError as exc:
        unavailable(f"clipper-docker is not importable ({exc})")
    try:
        client = connect_docker(timeout=300)
    except ClipperException as exc:
        unavailable(f"no Docker daemon: {exc.msg}")
    yield client
    for image in client.images.list():
        for tag in image.tags:
            if tag.split("/")[-1].startswith(f"{CLUSTER}-"):
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
    client.close()


@pytest.fixture(scope="module")
def images(docker_client: Any) -> dict[str, str]:
    """Every image a cluster and the framework models need (reused when their inputs are unchanged)."""
    from clipper_docker.images import DEFAULT_IMAGES, build_images

    lines: list[str] = []
    t0 = time.monotonic()
    try:
        built = build_images(
            registry=CLIPPER_REGISTRY,
            names=[*DEFAULT_IMAGES, *FRAMEWORK_IMAGES],
            say=lines.append,
            client=docker_client,
            offline=True,
        )
    except ClipperException as exc:
        unavailable("the Clipper images could not be built: " + exc.msg + "\n" + "\n".join(lines[-20:]))
    sys.stderr.write(f"\nClipper framework images ready in {time.monotonic() - t0:.1f} s\n")
    return built


@pytest.fixture(scope="module")
def cluster(images: dict[str, str]) -> Iterator[ClipperConnection]:
    from clipper_admin import DockerContainerManager

    query, mgmt, rpc, redis = free_ports(4)
    cm = DockerContainerManager(
        cluster_name=CLUSTER,
        docker_network="host",
        clipper_query_port=query,
        clipper_management_port=mgmt,
        clipper_rpc_port=rpc,
        redis_port=redis,
    )
    conn = ClipperConnection(cm)
    conn.start_clipper()
    try:
        yield conn
    finally:
        conn.stop_all(graceful=False)


def predict_batch(conn: ClipperConnection, app: str, batch: list[Any]) -> list[dict[str, Any]]:
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input_batch": batch}, timeout=60)
    assert r.status_code == 200, r.text
    return list(r.json()["batch_predictions"])


def wait_for_answers(conn: ClipperConnection, app: str, batch: list[Any]) -> list[dict[str, Any]]:
    """The first answers to ``batch`` of which none is a default output (the replica is up and loaded)."""
    answers: list[dict[str, Any]] = []

    def answered() -> bool:
        answers[:] = predict_batch(conn, app, batch)
        return all(not p["default"] for p in answers)

    try:
        wait_until(answered, STARTUP_TIMEOUT, f"{app} to answer from its Docker replica", interval=0.5)
    except AssertionError as exc:
        logs = [c.logs(tail=40).decode(errors="replace") for c in model_containers(conn.cm.docker_client, app)]
        msg = f"{exc}\nlast answers: {answers}\n" + "\n".join(logs)
        raise AssertionError(msg) from None
    return answers


def model_containers(docker_client: Any, model: str, version: str = "1") -> list[Any]:
    return list(
        docker_client.containers.list(
            filters={
                "label": [
                    f"{CLIPPER_DOCKER_LABEL}={CLUSTER}",
                    f"{CLIPPER_MODEL_CONTAINER_LABEL}={model_label(model, version)}",
                ]
            }
        )
    )


def built_from(docker_client: Any, container: Any, base: str) -> bool:
    """Whether ``container``'s image has the image ``base`` among its ancestors."""
    base_id = docker_client.images.get(base).id
    return any(layer.get("Id") == base_id for layer in container.image.history())


def predict_vectors(spark: Any, model: Any, inputs: Any) -> list[str]:
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame([(Vectors.dense([float(v) for v in x]),) for x in inputs], ["features"])
    rows = model.transform(df).select("prediction", "probability").collect()
    return [json.dumps([r.prediction, float(r.probability[1])]) for r in rows]


def test_a_spark_ml_model_runs_in_the_pyspark_image(
    spark: Any, cluster: ClipperConnection, images: dict[str, str], docker_client: Any
) -> None:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    from clipper_admin.deployers import pyspark as pyspark_deployer

    rows = [(Vectors.dense([a / 5.0, 1.0 - a / 5.0 + d]), float(a > 2)) for a in range(6) for d in (-0.05, 0.05)]
    model = LogisticRegression(maxIter=5, regParam=0.01).fit(spark.createDataFrame(rows, ["features", "label"]))
    df = spark.createDataFrame([(Vectors.dense(x),) for x in DOUBLES], ["features"])
    expected = [[r.prediction, float(r.probability[1])] for r in model.transform(df).collect()]

    pyspark_deployer.create_endpoint(
        cluster, "spark-lr", "doubles", predict_vectors, model, spark.sparkContext, slo_micros=SLO_MICROS
    )
    try:
        answers = wait_for_answers(cluster, "spark-lr", DOUBLES)
        assert [output_row(a) for a in answers] == expected
        (container,) = model_containers(docker_client, "spark-lr")
        assert built_from(docker_client, container, images["pyspark-container"])
        java = container.exec_run(["java", "-version"])
        assert java.exit_code == 0 and b"openjdk" in java.output.lower(), java.output
    finally:
        cluster.stop_models(["spark-lr"])


def mlp_rows(model: Any, inputs: list[Any]) -> list[str]:
    import torch

    x = torch.from_numpy(np.stack(inputs).astype(np.float32))
    return [json.dumps(row) for row in model(x).tolist()]


def session_rows(session: Any, inputs: list[Any]) -> list[str]:
    name = session.get_inputs()[0].name
    (out,) = session.run(None, {name: np.stack(inputs).astype(np.float32)})
    return [json.dumps(row) for row in out.tolist()]


def test_a_torch_mlp_and_its_onnx_export_run_in_their_images(
    cluster: ClipperConnection, images: dict[str, str], docker_client: Any
) -> None:
    torch = require("torch", "torch")
    require("onnxruntime", "onnx")
    from clipper_admin.deployers import onnx as onnx_deployer
    from clipper_admin.deployers import pytorch as pytorch_deployer

    model = make_mlp(torch)
    xs = np.random.default_rng(3).normal(size=(8, 4)).round(6).tolist()
    with torch.no_grad():
        expected = model(torch.tensor(xs, dtype=torch.float32)).numpy()

    pytorch_deployer.create_endpoint(cluster, "mlp-torch", "doubles", mlp_rows, model, slo_micros=SLO_MICROS)
    onnx_deployer.create_pytorch_endpoint(
        cluster, "mlp-onnx", "doubles", torch.zeros(2, 4), session_rows, model, slo_micros=SLO_MICROS
    )
    try:
        for app, image in (("mlp-torch", "pytorch-container"), ("mlp-onnx", "onnx-container")):
            got = np.array([output_row(a) for a in wait_for_answers(cluster, app, xs)])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=app)
            (container,) = model_containers(docker_client, app)
            assert built_from(docker_client, container, images[image]), app
    finally:
        cluster.stop_models(["mlp-torch", "mlp-onnx"])


def test_a_missing_framework_image_fails_the_deploy_with_the_command_that_builds_it(
    spark: Any, cluster: ClipperConnection, docker_client: Any
) -> None:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    from clipper_admin.deployers import pyspark as pyspark_deployer

    rows = [(Vectors.dense([float(a), 1.0 - a]), float(a)) for a in (0, 1, 0, 1)]
    model = LogisticRegression(maxIter=2).fit(spark.createDataFrame(rows, ["features", "label"]))
    missing = f"{CLIPPER_REGISTRY}/pyspark-container:not-built"
    with pytest.raises(ClipperException, match="clipper images build --only pyspark-container"):
        pyspark_deployer.deploy_pyspark_model(
            cluster, "spark-missing", 1, "doubles", predict_vectors, model, spark.sparkContext, base_image=missing
        )
    assert model_containers(docker_client, "spark-missing") == []
    assert cluster.get_model_info("spark-missing", "1") is None
