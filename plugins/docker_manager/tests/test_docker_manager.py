"""DockerContainerManager against a real Docker daemon (host networking, free loopback ports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
from clipper_deployers import python as python_deployer
from docker_test_support import PREFIX

from clipper_core import __version__
from clipper_core.container_manager import (
    CLIPPER_DOCKER_LABEL,
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_MODEL_CONTAINER_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
)
from clipper_core.errors import ClipperException
from clipper_core.ports import free_ports

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


def predict(conn: Any, app: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json=body, timeout=30)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def containers(conn: Any, *labels: str, all: bool = True) -> list[Any]:  # noqa: A002
    cm = conn.cm
    filters = {"label": [f"{CLIPPER_DOCKER_LABEL}={cm.cluster_name}", *labels]}
    return list(cm.docker_client.containers.list(all=all, filters=filters))


def connected_replicas(conn: Any, name: str) -> int:
    return sum(1 for r in conn.get_all_model_replicas(verbose=True) if r.get("model_name") == name)


def add_one(xs: list[Any]) -> list[str]:
    return [str(float(x[0]) + 1.0) for x in xs]


# -- plugin registration ------------------------------------------------------------------------------


def test_registered_through_the_entry_point() -> None:
    from clipper_admin import DockerContainerManager
    from clipper_core.plugins import get_plugin_manager
    from clipper_core.registry import PluginHost

    host = PluginHost(get_plugin_manager())
    assert host.container_managers().get("docker") is DockerContainerManager
    cm = DockerContainerManager()  # no daemon contact until first use
    assert (cm.cluster_identifier, cm.cluster_name, cm.docker_network) == ("default-cluster",) * 2 + (
        "clipper_network",
    )
    assert cm.get_query_addr() == "localhost:1337" and cm.get_admin_addr() == "localhost:1338"


def test_cli_options_are_constructor_arguments() -> None:
    import inspect

    from clipper_admin import DockerContainerManager

    options = {o.name: o.cli_flag for o in DockerContainerManager.cli_options()}
    assert set(options) <= set(inspect.signature(DockerContainerManager).parameters)
    assert options["docker_network"] == "--docker-network" and options["publish_address"] == "--publish-address"
    assert options["clipper_query_port"] == "--query-port" and "docker_ip_address" in options and "redis_ip" in options


def test_images_command_comes_from_the_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_core.cli import main
    from clipper_core.plugins import list_plugins
    from clipper_core.registry import PluginHost

    docker_plugin = [p for p in list_plugins(PluginHost().pm) if p["dist"] == "clipper-docker"]
    assert docker_plugin and "clipper_register_commands" in docker_plugin[0]["hooks"]
    with pytest.raises(SystemExit) as exit_info:
        main(["images", "build", "--help"])
    assert exit_info.value.code == 0
    assert "--wheelhouse" in capsys.readouterr().out


def test_clipper_command_starts_and_stops_a_docker_cluster(
    clipper_images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from clipper_admin import DockerContainerManager
    from clipper_core.cli import main

    name = f"{PREFIX}-cli"
    query, mgmt, rpc, redis = free_ports(4)
    flags = ["--manager", "docker", "--cluster-name", name]
    start = ["--docker-network", "host", "--query-port", str(query), "--mgmt-port", str(mgmt)]
    start += ["--rpc-port", str(rpc), "--redis-port", str(redis)]
    cm = DockerContainerManager(cluster_name=name)
    try:
        assert main(["start", *flags, *start]) == 0, capsys.readouterr().err
        assert f"http://localhost:{query}" in capsys.readouterr().out
        cm.connect()
        assert (cm.clipper_query_port, cm.clipper_rpc_port, cm.docker_network) == (query, rpc, "host")
        assert main(["status", *flags, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["cluster"]["docker_network"] == "host"
    finally:
        assert main(["stop", *flags, "--kill"]) == 0
    assert not cm.is_running() and cm._containers() == []


def test_no_daemon_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clipper_admin import ClipperConnection, DockerContainerManager

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    conn = ClipperConnection(DockerContainerManager(cluster_name=f"{PREFIX}-nodaemon", docker_network="host"))
    with pytest.raises(ClipperException, match=r"No Docker daemon answers.*docker-up\.sh"):
        conn.start_clipper()


# -- start / connect / stop ---------------------------------------------------------------------------


def test_start_labels_connect_and_stop_all(clusters: Any) -> None:
    conn = clusters.make("life")
    cm = conn.cm
    assert requests.get(f"http://{cm.get_admin_addr()}/admin/ping", timeout=5).status_code == 200
    assert requests.get(f"http://{cm.get_query_addr()}/metrics", timeout=5).status_code == 200
    running = containers(conn, all=False)
    assert len(running) == 3
    (query,) = containers(conn, CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL)
    (mgmt,) = containers(conn, CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL)
    (redis,) = [c for c in running if c.name.startswith("redis-")]
    assert query.name.startswith("query_frontend-") and mgmt.name.startswith("mgmt_frontend-")
    assert query.labels["ai.clipper.query_frontend.query.port"] == str(cm.clipper_query_port)
    assert query.labels["ai.clipper.query_frontend.rpc.port"] == str(cm.clipper_rpc_port)
    assert mgmt.labels["ai.clipper.management.port"] == str(cm.clipper_management_port)
    assert redis.labels["ai.clipper.redis.port"] == str(cm.redis_port)
    assert all(c.attrs["HostConfig"]["NetworkMode"] == "host" for c in running)

    with pytest.raises(ClipperException, match="cannot be started because it already exists"):
        cm.start_clipper("unused", "unused")

    from clipper_admin import ClipperConnection, DockerContainerManager

    other = ClipperConnection(DockerContainerManager(cluster_name=cm.cluster_name, docker_network="host"))
    other.connect()  # ports come from the labels, not from the constructor's defaults
    assert other.get_query_addr() == cm.get_query_addr()
    assert other.cm.get_admin_addr() == cm.get_admin_addr()
    assert other.cm.clipper_rpc_port == cm.clipper_rpc_port
    assert other.get_all_apps() == []

    conn.stop_all()
    assert containers(conn) == []
    assert not cm.is_running()
    with pytest.raises(ClipperException, match="is not running"):
        ClipperConnection(DockerContainerManager(cluster_name=cm.cluster_name)).connect()


def test_port_conflict_fails_clearly_and_starts_nothing(clusters: Any) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        conn = clusters.make("ports", start=False, clipper_query_port=blocker.getsockname()[1])
        with pytest.raises(ClipperException, match=r"port \d+ for the query frontend .* already in use"):
            conn.start_clipper()
        assert containers(conn) == []
    finally:
        blocker.close()


def test_missing_frontend_image_fails_and_starts_nothing(clusters: Any) -> None:
    conn = clusters.make("noimage", start=False)
    with pytest.raises(ClipperException, match="does not exist locally and could not be pulled"):
        conn.start_clipper(query_frontend_image="clipper/no-such-image:0")
    assert containers(conn) == []


# -- models -------------------------------------------------------------------------------------------


def test_create_endpoint_predicts(cluster: Any) -> None:
    python_deployer.create_endpoint(cluster, "plus-one", "doubles", add_one, default_output="-1.0")
    assert predict(cluster, "plus-one", {"input": [1.5, 0.0]})["output"] == 2.5
    batch = predict(cluster, "plus-one", {"input_batch": [[1.0], [2.0]]})
    assert [p["output"] for p in batch["batch_predictions"]] == [2.0, 3.0]
    (replica,) = containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=plus-one_1")
    assert replica.name.startswith("plus-one_1-")
    env = dict(e.split("=", 1) for e in replica.attrs["Config"]["Env"])
    assert env["CLIPPER_IP"] == "127.0.0.1" and env["CLIPPER_PORT"] == str(cluster.cm.clipper_rpc_port)
    assert env["CLIPPER_MODEL_NAME"] == "plus-one" and env["CLIPPER_INPUT_TYPE"] == "doubles"
    assert replica.attrs["Config"]["Image"] == f"{cluster.cm.cluster_name}-plus-one:1"
    assert cluster.get_num_replicas("plus-one") == 1


def test_scale_up_and_down(cluster: Any, wait_until: Any) -> None:
    python_deployer.create_endpoint(cluster, "scaled", "doubles", add_one)
    cluster.set_num_replicas("scaled", 3)
    assert cluster.get_num_replicas("scaled") == 3
    wait_until(lambda: connected_replicas(cluster, "scaled") == 3, what="3 connected replicas")
    assert predict(cluster, "scaled", {"input": [41.0]})["output"] == 42.0
    cluster.set_num_replicas("scaled", 1)
    assert cluster.get_num_replicas("scaled") == 1
    assert len(containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=scaled_1")) == 1
    wait_until(lambda: connected_replicas(cluster, "scaled") == 1, what="1 connected replica")
    assert predict(cluster, "scaled", {"input": [1.0]})["output"] == 2.0


def test_versions_stop_inactive_and_stop_models(cluster: Any) -> None:
    python_deployer.create_endpoint(cluster, "versioned", "doubles", add_one)
    python_deployer.deploy_python_closure(cluster, "versioned", 2, "doubles", lambda xs: ["2.0" for _ in xs])
    assert cluster.get_current_model_version("versioned") == "2"
    assert predict(cluster, "versioned", {"input": [5.0]})["output"] == 2.0
    cluster.stop_inactive_model_versions(["versioned"])
    assert cluster.cm.get_num_replicas("versioned", "1") == 0
    assert cluster.cm.get_num_replicas("versioned", "2") == 1
    cluster.stop_models(["versioned"])
    assert containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=versioned_2") == []
    assert not [m for m in cluster.get_all_models() if m.startswith("versioned:")]


def test_get_logs(cluster: Any, tmp_path: Path) -> None:
    paths = cluster.get_clipper_logs(str(tmp_path / "logs"))
    assert len(paths) >= 3
    for p in paths:
        assert Path(p).is_file() and os.path.basename(p).startswith("image_sha256:") and ":container_" in p
    assert any(Path(p).stat().st_size > 0 for p in paths)


def test_connect_from_a_new_process(cluster: Any) -> None:
    python_deployer.create_endpoint(cluster, "remote", "doubles", add_one)
    script = textwrap.dedent(
        f"""
        import json, requests
        from clipper_admin import ClipperConnection, DockerContainerManager
        conn = ClipperConnection(DockerContainerManager(cluster_name={cluster.cm.cluster_name!r}))
        conn.connect()
        r = requests.post("http://%s/remote/predict" % conn.get_query_addr(), json={{"input": [9.0]}}, timeout=30)
        print(json.dumps({{"addr": conn.get_query_addr(), "apps": conn.get_all_apps(), "out": r.json()["output"],
                          "replicas": conn.get_num_replicas("remote")}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["addr"] == f"localhost:{cluster.cm.clipper_query_port}"
    assert "remote" in result["apps"] and result["out"] == 10.0 and result["replicas"] == 1


def test_crashed_model_container_is_restarted(cluster: Any, wait_until: Any) -> None:
    python_deployer.create_endpoint(cluster, "crashy", "doubles", add_one)
    (replica,) = containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=crashy_1")
    os.kill(replica.attrs["State"]["Pid"], signal.SIGKILL)  # the container's PID 1: the container crashes

    def restarted() -> bool:
        replica.reload()
        return bool(replica.attrs["RestartCount"] >= 1 and replica.status == "running")

    wait_until(restarted, what="Docker to restart the crashed replica")
    wait_until(lambda: connected_replicas(cluster, "crashy") == 1, what="the restarted replica to reconnect")
    wait_until(lambda: predict(cluster, "crashy", {"input": [3.0]}).get("output") == 4.0, what="a real prediction")
    assert cluster.get_num_replicas("crashy") == 1


def test_push_to_a_local_registry(cluster: Any, local_registry: str, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("42")
    image = cluster.build_model(
        "pushed", 3, str(model), "default", container_registry=local_registry, pkgs_to_install=["async-timeout"]
    )
    assert image == f"{local_registry}/{cluster.cm.cluster_name}-pushed:3"
    tags = requests.get(f"http://{local_registry}/v2/{cluster.cm.cluster_name}-pushed/tags/list", timeout=10).json()
    assert tags["tags"] == ["3"]
    probe = cluster.cm.docker_client.containers.run(image, ["cat", "/model/weights.txt"], detach=True)
    try:
        assert probe.wait(timeout=60)["StatusCode"] == 0
        assert probe.logs(stdout=True, stderr=True).strip() == b"42"
    finally:
        probe.remove(force=True)


def test_refused_push_reports_the_reason(cluster: Any, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with pytest.raises(ClipperException, match=r"Pushing image .* failed: .*(refused|connect)"):
        cluster.build_model("refused", 1, str(tmp_path), "default", container_registry=f"127.0.0.1:{port}")


def test_bad_input(cluster: Any, tmp_path: Path) -> None:
    from clipper_admin import DockerContainerManager

    with pytest.raises(ClipperException, match="Invalid value: Bad_Name"):
        cluster.build_model("Bad_Name", 1, str(tmp_path), "default")
    with pytest.raises(ClipperException, match="Invalid value"):
        DockerContainerManager(cluster_name="Not A Cluster")
    with pytest.raises(ClipperException, match="does not exist or is not a directory"):
        cluster.build_model("nodir", 1, str(tmp_path / "missing"), "default")
    with pytest.raises(ClipperException, match="base image clipper/no-such-base:0 does not exist"):
        cluster.build_model("nobase", 1, str(tmp_path), "clipper/no-such-base:0")
    with pytest.raises(ClipperException, match="does not exist locally and could not be pulled"):
        cluster.deploy_model("noimage", 1, "doubles", "clipper/no-such-model:1")
    assert containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=noimage_1") == []
    assert cluster.get_model_info("noimage", 1) is None
    with pytest.raises(ClipperException):
        cluster.cm.set_num_replicas("x", "1", "doubles", f"clipper/python-closure-container:{__version__}", -1)


def test_two_clusters_side_by_side(cluster: Any, clusters: Any) -> None:
    python_deployer.create_endpoint(cluster, "shared-name", "doubles", add_one)
    other = clusters.make("other")
    python_deployer.create_endpoint(other, "shared-name", "doubles", lambda xs: ["7.0" for _ in xs])
    assert predict(cluster, "shared-name", {"input": [1.0]})["output"] == 2.0
    assert predict(other, "shared-name", {"input": [1.0]})["output"] == 7.0
    mine = {c.id for c in containers(cluster)}
    theirs = {c.id for c in containers(other)}
    assert mine and theirs and not mine & theirs
    other.stop_all_model_containers()
    assert cluster.get_num_replicas("shared-name") == 1
    other.stop_all()
    assert containers(other) == []
    assert {c.id for c in containers(cluster)} == mine
    assert predict(cluster, "shared-name", {"input": [2.0]})["output"] == 3.0


def test_unloadable_model_fails_fast_and_leaves_nothing(cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "func.pkl").write_bytes(b"not a pickle")
    image = cluster.build_model("broken", 1, str(tmp_path), "default")
    with pytest.raises(ClipperException, match=r"cannot load its model(.|\n)*func\.pkl|UnpicklingError"):
        cluster.deploy_model("broken", 1, "doubles", image)
    assert containers(cluster, f"{CLIPPER_MODEL_CONTAINER_LABEL}=broken_1") == []
    assert cluster.get_model_info("broken", 1) is None


def test_bridge_network_publishes_ports(clusters: Any, docker_client: Any) -> None:
    """The original's mode: a user-defined bridge network, frontends reached through published ports."""
    network = f"{PREFIX}-net"
    try:
        conn = clusters.make("bridge", docker_network=network)
        python_deployer.create_endpoint(conn, "bridged", "doubles", add_one)
        assert predict(conn, "bridged", {"input": [0.5]})["output"] == 1.5
        (replica,) = containers(conn, f"{CLIPPER_MODEL_CONTAINER_LABEL}=bridged_1")
        env = dict(e.split("=", 1) for e in replica.attrs["Config"]["Env"])
        (query,) = containers(conn, CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL)
        assert env["CLIPPER_IP"] == query.name and env["CLIPPER_PORT"] == "7000"
        # Published on loopback only (the original published on every interface).
        for c in containers(conn, all=False):
            bindings = [b for port in (c.attrs["HostConfig"]["PortBindings"] or {}).values() for b in port or []]
            assert bindings == [] or {b["HostIp"] for b in bindings} == {"127.0.0.1"}, c.name
        assert len([c for c in containers(conn) if c.attrs["HostConfig"]["PortBindings"]]) == 3
        assert network in replica.attrs["NetworkSettings"]["Networks"]
        conn.stop_all()
    finally:
        for net in docker_client.networks.list(names=[network]):
            net.remove()
