"""KubernetesContainerManager against a stateful Kubernetes API server (the kmock stand-in, or a real cluster with
CLIPPER_K8S_REAL=1): objects, names and labels, waits, scaling, connect from a new process, clean-up, faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from k8s_test_support import Cluster

from clipper_core import __version__
from clipper_core.container_manager import CLIPPER_DOCKER_LABEL, CLIPPER_NAME_LABEL, clipper_registry
from clipper_core.errors import ClipperException, ContainerManagerError, DeploymentError

IMAGES = {
    "query_frontend_image": f"{clipper_registry()}/query_frontend:{__version__}",
    "mgmt_frontend_image": f"{clipper_registry()}/management_frontend:{__version__}",
}
#: The stand-in never pulls it; a real cluster must be able to run it (a model image built by build_model).
MODEL_IMAGE = os.environ.get("CLIPPER_K8S_MODEL_IMAGE", "reg.example/m:1")


def start(cm: Any, **kwargs: Any) -> None:
    cm.start_clipper(
        **{
            **IMAGES,
            "frontend_exporter_image": "",
            "cache_size": 1024,
            "qf_http_thread_pool_size": 1,
            "qf_http_timeout_request": 5,
            "qf_http_timeout_content": 300,
            **kwargs,
        }
    )


def test_start_creates_the_originals_objects_with_cluster_labels(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    cm = managers(cluster_name=cluster_name)
    start(cm, num_frontend_replicas=2)
    c = cluster_name
    assert set(k8s.labelled(c)) >= set(
        [
            f"ClusterRole/clipper-default-{c}",
            f"ClusterRoleBinding/clipper-default-{c}",
            f"Deployment/redis-at-{c}",
            f"Service/redis-at-{c}",
            f"Deployment/mgmt-frontend-at-{c}",
            f"Service/mgmt-frontend-at-{c}",
            f"Deployment/query-frontend-0-at-{c}",
            f"Deployment/query-frontend-1-at-{c}",
            f"Service/query-frontend-0-at-{c}",
            f"Service/query-frontend-1-at-{c}",
            f"Service/query-frontend-at-{c}",
        ]
    )
    dep = cm._k8s_apps.read_namespaced_deployment(f"query-frontend-1-at-{c}", "default")
    assert dep.metadata.labels[CLIPPER_DOCKER_LABEL] == c  # the Deployment itself carries the labels
    args = dep.spec.template.spec.containers[0].args
    assert args[args.index("--redis-ip") + 1] == f"redis-at-{c}"
    assert dep.spec.strategy.rolling_update.max_unavailable == 0
    assert cm.cluster_identifier == f"default-{c}"
    assert cm.num_frontend_replicas == 2
    if k8s.server is not None:
        assert cm.get_query_addr().startswith("node-1.example:3")  # ExternalDNS of the stand-in's node, NodePort
    with pytest.raises(ClipperException, match="already exists"):
        start(managers(cluster_name=c))


def test_deploy_scale_and_stop_models(k8s: Cluster, managers: Callable[..., Any], cluster_name: str) -> None:
    cm = managers(cluster_name=cluster_name)
    start(cm)
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    probe = {"exec": {"command": ["test", "-f", "/model_is_ready.check"]}, "periodSeconds": 10}
    cm.deploy_model("m", "1", "doubles", MODEL_IMAGE, num_replicas=2, resources=resources, liveness_probe=probe)
    name = f"m-1-deployment-at-0-at-{cluster_name}"
    dep = cm._k8s_apps.read_namespaced_deployment(name, "default")
    container = dep.spec.template.spec.containers[0]
    assert container.resources.requests == {"cpu": "100m", "memory": "128Mi"}
    assert container.liveness_probe.period_seconds == 10
    as_sent = cm._k8s_apps.api_client.sanitize_for_serialization(container)
    assert as_sent["readinessProbe"]["exec"]["command"] == ["cat", "/model_is_ready.check"]
    env = {e.name: e.value for e in container.env}
    assert env["CLIPPER_IP"] == f"query-frontend-0-at-{cluster_name}" and env["CLIPPER_MODEL_NAME"] == "m"
    assert cm.get_num_replicas("m", "1") == 2
    cm.set_num_replicas("m", "1", "doubles", MODEL_IMAGE, 3)
    assert cm.get_num_replicas("m", "1") == 3
    assert cm._k8s_apps.read_namespaced_deployment(name, "default").status.available_replicas == 3
    with pytest.raises(ClipperException, match=">= 0"):
        cm.set_num_replicas("m", "1", "doubles", MODEL_IMAGE, -1)
    with pytest.raises(DeploymentError, match="longer than the 63 characters"):
        cm.deploy_model("m" * 60, "1234", "doubles", MODEL_IMAGE)
    with pytest.raises(ClipperException, match="Unknown deploy_model options"):
        cm.deploy_model("m", "2", "doubles", MODEL_IMAGE, memory="1Gi")
    cm.stop_models({"m": ["1"]})
    assert cm.get_num_replicas("m", "1") == 0
    assert not [o for o in k8s.labelled(cluster_name) if o.startswith(("Deployment/m-1", "Pod/m-1", "ReplicaSet/m-1"))]
    assert cm.is_running()


def test_deploying_a_version_again_rolls_its_deployment(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    k8s.handler  # noqa: B018 - the "-patched" image exists only for the stand-in
    cm = managers(cluster_name=cluster_name)
    start(cm)
    cm.deploy_model("m", "1", "doubles", MODEL_IMAGE)
    name = f"m-1-deployment-at-0-at-{cluster_name}"
    cm.set_model_options("m", resources={"limits": {"memory": "512Mi"}})
    cm.deploy_model("m", "1", "doubles", MODEL_IMAGE + "-patched", num_replicas=2)
    dep = cm._k8s_apps.read_namespaced_deployment(name, "default")
    container = dep.spec.template.spec.containers[0]
    assert container.image == MODEL_IMAGE + "-patched"
    assert container.resources.limits == {"memory": "512Mi"}
    assert dep.spec.replicas == 2 and dep.spec.strategy.rolling_update.max_unavailable == 0
    assert [o for o in k8s.labelled(cluster_name) if o.startswith("Deployment/m-1")] == [f"Deployment/{name}"]


def test_stop_all_leaves_no_labelled_object(k8s: Cluster, managers: Callable[..., Any], cluster_name: str) -> None:
    cm = managers(cluster_name=cluster_name)
    start(cm)
    cm.deploy_model("m", "1", "doubles", MODEL_IMAGE)
    assert any(o.startswith("Pod/") for o in k8s.labelled(cluster_name))
    cm.stop_all()
    assert k8s.labelled(cluster_name) == []
    assert not cm.is_running()


def test_external_redis_gets_no_redis_objects(k8s: Cluster, managers: Callable[..., Any], cluster_name: str) -> None:
    k8s.handler  # noqa: B018 - the frontends could not reach redis.example in a real cluster
    cm = managers(cluster_name=cluster_name, redis_ip="redis.example", redis_port=6380)
    start(cm)
    assert not [o for o in k8s.labelled(cluster_name) if "redis" in o]
    for name in (f"mgmt-frontend-at-{cluster_name}", f"query-frontend-0-at-{cluster_name}"):
        args = cm._k8s_apps.read_namespaced_deployment(name, "default").spec.template.spec.containers[0].args
        assert args[args.index("--redis-ip") + 1 :][:3] == ["redis.example", "--redis-port", "6380"], args


def test_same_cluster_name_in_two_namespaces_stays_apart(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    ns = f"other-{cluster_name}"
    here = managers(cluster_name=cluster_name)
    there = managers(cluster_name=cluster_name, namespace=ns, create_namespace_if_not_exists=True)
    try:
        start(here)
        start(there)
        assert there.cluster_identifier == cluster_name and here.cluster_identifier == f"default-{cluster_name}"
        there.stop_all()
        assert not there.is_running()
        assert here.is_running()
        remaining = k8s.labelled(cluster_name)
        assert f"ClusterRole/clipper-default-{cluster_name}" in remaining, remaining
        assert f"ClusterRole/clipper-{ns}-{cluster_name}" not in remaining, remaining
    finally:
        there.stop_all()
        there._k8s_v1.delete_namespace(ns)


def test_connect_from_a_new_process(k8s: Cluster, managers: Callable[..., Any], cluster_name: str) -> None:
    cm = managers(cluster_name=cluster_name)
    start(cm)
    code = (
        "import sys; from clipper_admin import KubernetesContainerManager as K\n"
        f"cm = K(cluster_name={cluster_name!r}); cm.connect()\n"
        "print(cm.get_query_addr()); print(cm.get_admin_addr()); print(cm.is_running())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": k8s.kubeconfig},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [cm.get_query_addr(), cm.get_admin_addr(), "True"]


def test_connect_to_a_cluster_that_is_not_running(managers: Callable[..., Any], cluster_name: str) -> None:
    with pytest.raises(ContainerManagerError, match=f"'{cluster_name}' is not running"):
        managers(cluster_name=cluster_name).connect()


# -- address rules --------------------------------------------------------------------------------------------


def test_load_balancer_and_proxy_addresses(k8s: Cluster, managers: Callable[..., Any], cluster_name: str) -> None:
    k8s.handler  # noqa: B018 - the stand-in assigns the ingress IP
    types = {
        "redis": "ClusterIP",
        "management": "LoadBalancer",
        "query": "LoadBalancer",
        "query-rpc": "ClusterIP",
        "metric": "ClusterIP",
    }
    cm = managers(cluster_name=cluster_name, service_types=types)
    start(cm)
    assert cm.get_query_addr() == "192.0.2.10:1337"
    assert cm.get_admin_addr() == "192.0.2.10:1338"
    proxy = managers(cluster_name=cluster_name, kubernetes_proxy_addr="http://127.0.0.1:8001/")
    proxy.connect()
    assert proxy.get_query_addr() == "192.0.2.10:1337"  # a LoadBalancer address wins, as in the original
    other = managers(cluster_name=cluster_name + "p", kubernetes_proxy_addr="http://127.0.0.1:8001")
    start(other)
    assert other.get_query_addr() == (
        f"http://127.0.0.1:8001/api/v1/namespaces/default/services/query-frontend-at-{cluster_name}p:1337/proxy"
    )


def test_node_addresses_external_dns_then_internal_ip(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    from k8s_standin import NODES

    cm = managers(cluster_name=cluster_name)
    start(cm)

    def only_internal() -> None:
        node = k8s.handler.objects[(NODES, None, "node-1")]
        node.patch({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})

    def restore() -> None:
        k8s.handler.objects[(NODES, None, "node-1")].patch(
            {
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "ExternalDNS", "address": "node-1.example"},
                    ]
                }
            }
        )

    k8s.call(only_internal)
    try:
        with pytest.raises(ContainerManagerError, match="No external node addresses found"):
            managers(cluster_name=cluster_name).connect()
        internal = managers(cluster_name=cluster_name, useInternalIP=True)
        internal.connect()
        assert internal.get_query_addr().startswith("127.0.0.1:3")
    finally:
        k8s.call(restore)


# -- bad input ------------------------------------------------------------------------------------------------


def test_unknown_namespace_is_refused_unless_created(k8s: Cluster, managers: Callable[..., Any]) -> None:
    ns = f"ns-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    with pytest.raises(ContainerManagerError, match="Namespace does not exist.*create_namespace_if_not_exists=True"):
        managers(namespace=ns)
    cm = managers(namespace=ns, create_namespace_if_not_exists=True, cluster_name="c1")
    try:
        assert cm.k8s_namespace == ns and cm.cluster_identifier == "c1"
        assert cm._k8s_v1.read_namespace(ns).metadata.name == ns
    finally:
        cm._k8s_v1.delete_namespace(ns)


@pytest.mark.parametrize(
    ("service_types", "message"),
    [
        (["redis", "management", "query", "query-rpc", "metric"], "service_types must be 'dict' type: ['redis'"),
        (
            {
                "redis": "NodePort",
                "UNKNOWN_KEY": "NodePort",
                "query": "NodePort",
                "query-rpc": "NodePort",
                "metric": "NodePort",
            },
            "service_types has unknown keys: dict_keys(['redis', 'UNKNOWN_KEY'",
        ),
        (
            {
                "redis": "NodePort",
                "management": "NodePort",
                "query": "NodePort",
                "query-rpc": "UNKNOWN_VALUE",
                "metric": "NodePort",
            },
            "service_types has unknown values: dict_values(['NodePort'",
        ),
        (
            {
                "redis": "NodePort",
                "management": "NodePort",
                "query": "ExternalName",
                "query-rpc": "NodePort",
                "metric": "NodePort",
            },
            "Clipper does not support 'ExternalName' service",
        ),
    ],
)
def test_bad_service_types_get_the_originals_messages(
    managers: Callable[..., Any], service_types: Any, message: str
) -> None:
    with pytest.raises(ClipperException) as info:
        managers(service_types=service_types)
    assert str(info.value).startswith(message), str(info.value)


def test_unreachable_api_server_fails_fast(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from clipper_k8s import KubernetesContainerManager

    from clipper_core.ports import free_ports

    (port,) = free_ports(1)
    cfg = tmp_path / "config"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: gone, user: {token: t}}]\ncontexts: [{name: gone, context: {cluster: gone, user: gone}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    t0 = time.monotonic()
    with pytest.raises(ContainerManagerError, match=f"API server at http://127.0.0.1:{port} is unreachable"):
        KubernetesContainerManager(cluster_name="nowhere")
    assert time.monotonic() - t0 < 30


def test_in_cluster_credentials_are_used_inside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a pod (KUBERNETES_SERVICE_HOST set) the service account is used; here it has no token file."""
    from clipper_k8s import KubernetesContainerManager

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        pytest.skip("running inside a pod: the service account exists")
    with pytest.raises(ContainerManagerError, match="from the pod service account.*token"):
        KubernetesContainerManager()


def test_an_api_server_that_never_answers_ends_within_the_request_timeout(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from clipper_k8s import KubernetesContainerManager

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never answers
        port = silent.getsockname()[1]
        cfg = tmp_path / "config"
        cfg.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: s\n"
            f"clusters: [{{name: s, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "users: [{name: s, user: {token: t}}]\ncontexts: [{name: s, context: {cluster: s, user: s}}]\n"
        )
        monkeypatch.setenv("KUBECONFIG", str(cfg))
        t0 = time.monotonic()
        with pytest.raises(ContainerManagerError, match="unreachable"):
            KubernetesContainerManager(cluster_name="silent", request_timeout=1.0)
        assert time.monotonic() - t0 < 10


def test_missing_kubeconfig_is_a_clear_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from clipper_k8s import KubernetesContainerManager

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ContainerManagerError, match="Could not load Kubernetes credentials"):
        KubernetesContainerManager()


# -- faults -----------------------------------------------------------------------------------------------------


def test_forbidden_by_rbac_names_the_object_and_leaves_nothing(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    from k8s_standin import Fault

    fault = Fault(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        403,
        "Forbidden",
        'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "dev" cannot create resource',
    )
    k8s.call(lambda: k8s.handler.faults.append(fault))
    try:
        cm = managers(cluster_name=cluster_name)
        with pytest.raises(ContainerManagerError) as info:
            start(cm)
    finally:
        k8s.call(lambda: k8s.handler.faults.remove(fault))
    assert f"ClusterRoleBinding clipper-default-{cluster_name}" in info.value.msg
    assert "forbidden by the Kubernetes API server (403)" in info.value.msg
    assert k8s.labelled(cluster_name) == []


def test_image_pull_failure_is_reported_with_the_reason(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    def behaviour(dep: dict[str, Any]) -> Any:
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        if "missing" in image:
            return ("ErrImagePull", f"pull access denied for {image}, repository does not exist")
        return "ready"

    k8s.call(lambda: setattr(k8s.handler, "pod_behaviour", behaviour))
    try:
        cm = managers(cluster_name=cluster_name)
        start(cm)
        t0 = time.monotonic()
        with pytest.raises(DeploymentError) as info:
            cm.deploy_model("m", "1", "doubles", "reg.example/missing:1")
        assert time.monotonic() - t0 < 20
        msg = info.value.msg
        assert f"m-1-deployment-at-0-at-{cluster_name}" in msg and "ErrImagePull" in msg, msg
        assert "reg.example/missing:1" in msg
        assert not [o for o in k8s.labelled(cluster_name) if o.startswith("Deployment/m-1")]
        other = managers(cluster_name=cluster_name + "x")
        with pytest.raises(ContainerManagerError, match="query frontend 0.*ErrImagePull"):
            start(other, query_frontend_image="reg.example/missing-frontend:1")
        assert k8s.labelled(cluster_name + "x") == []  # a failed start removes what it created
    finally:
        k8s.call(lambda: setattr(k8s.handler, "pod_behaviour", lambda dep: "ready"))


def test_a_deployment_that_never_becomes_available_times_out(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str
) -> None:
    def behaviour(dep: dict[str, Any]) -> Any:
        return "pending" if dep["metadata"]["labels"].get(CLIPPER_NAME_LABEL) == "model" else "ready"

    k8s.call(lambda: setattr(k8s.handler, "pod_behaviour", behaviour))
    try:
        cm = managers(cluster_name=cluster_name)
        start(cm)
        cm.deploy_timeout = 2.0
        t0 = time.monotonic()
        with pytest.raises(DeploymentError, match=r"did not become available within 2 s \(0 of 1 replicas"):
            cm.deploy_model("slow", "1", "doubles", "reg.example/slow:1")
        assert time.monotonic() - t0 < 15
        assert not [o for o in k8s.labelled(cluster_name) if o.startswith("Deployment/slow-1")]
    finally:
        k8s.call(lambda: setattr(k8s.handler, "pod_behaviour", lambda dep: "ready"))


def test_get_logs_writes_one_file_per_pod_container(
    k8s: Cluster, managers: Callable[..., Any], cluster_name: str, tmp_path: Any
) -> None:
    cm = managers(cluster_name=cluster_name)
    start(cm)
    paths = cm.get_logs(str(tmp_path / "logs"))
    names = sorted(os.path.basename(p) for p in paths)
    assert any(n.startswith(f"query-frontend-0-at-{cluster_name}") and n.endswith("_0.log") for n in names), names
    assert all(os.path.getsize(p) > 0 for p in paths)
