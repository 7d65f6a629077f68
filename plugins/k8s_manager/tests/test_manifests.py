"""Every object the manager creates, checked against the real Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors) for an older and the newest Kubernetes version it ships schemas for."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # in the plugin's test extra: a missing one fails the run, it does not skip
import pytest
from clipper_k8s import _manifests as mf

from clipper_core.container_manager import CLIPPER_DOCKER_LABEL, CLIPPER_MODEL_CONTAINER_LABEL

VERSIONS = ["1.30.0", "1.37.0"]
CLUSTER, NS = "demo", "clipper"


def every_object() -> list[dict[str, Any]]:
    options = {
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "liveness_probe": {
            "exec": {"command": ["test", "-f", mf.READY_FILE]},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }
    return [
        mf.namespace_manifest(NS),
        mf.cluster_role(CLUSTER, NS),
        mf.cluster_role_binding(CLUSTER, NS),
        mf.redis_deployment(CLUSTER, NS, "clipper/redis:0.5.0"),
        mf.redis_service(CLUSTER, NS, 6380, "NodePort"),
        mf.mgmt_deployment(CLUSTER, NS, "clipper/management_frontend:0.5.0", "redis-at-demo", 6380),
        mf.mgmt_service(CLUSTER, NS, "LoadBalancer"),
        mf.query_deployment(CLUSTER, NS, 0, "clipper/query_frontend:0.5.0", "redis-at-demo", 6380, 33554432, 300),
        mf.query_rpc_service(CLUSTER, NS, 0, "ClusterIP"),
        mf.query_service(CLUSTER, NS, "NodePort"),
        mf.model_deployment(CLUSTER, NS, "sum", "1", 0, "doubles", "reg.example/demo-sum:1", 2),
        mf.model_deployment(CLUSTER, NS, "sum", "2", 1, "doubles", "reg.example/demo-sum:2", 3, options),
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", every_object(), ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_object_is_valid_for_kubernetes(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_rejects_what_kubernetes_rejects() -> None:
    bad = mf.model_deployment(CLUSTER, NS, "sum", "1", 0, "doubles", "img", 1)
    bad["spec"]["template"]["spec"]["containers"][0]["label"] = {"typo": "x"}  # the original's kind of typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_deployments_carry_the_cluster_labels_and_roll_without_dropping_queries() -> None:
    for obj in every_object():
        if obj["kind"] == "Namespace":
            continue
        assert obj["metadata"]["labels"][CLIPPER_DOCKER_LABEL] == CLUSTER, obj["metadata"]["name"]
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
            assert obj["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_model_deployments_of_two_frontends_select_disjoint_pods() -> None:
    a = mf.model_deployment(CLUSTER, NS, "sum", "1", 0, "doubles", "img", 1)
    b = mf.model_deployment(CLUSTER, NS, "sum", "1", 1, "doubles", "img", 1)
    assert a["metadata"]["name"] == "sum-1-deployment-at-0-at-demo"
    assert a["spec"]["selector"]["matchLabels"] != b["spec"]["selector"]["matchLabels"]
    assert a["metadata"]["labels"][CLIPPER_MODEL_CONTAINER_LABEL] == "sum_1"
    container = a["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["readinessProbe"]["exec"]["command"] == ["cat", "/model_is_ready.check"]
    assert {e["name"]: e["value"] for e in container["env"]}["CLIPPER_IP"] == "query-frontend-0-at-demo"
