"""A kubelet and kube-proxy for the API server stand-in: runs each Deployment's pod template as Docker containers.

Every container of a cluster's pods joins one private network namespace (held by a "pause" container started with
``--network none``), whose ``/etc/hosts`` resolves each Service name to 127.0.0.1 — the cluster DNS of a one-node
cluster where every pod listens on its own container ports. Containers run with the image, command (as the
entrypoint), args and env exactly as in the manifest; readiness probes (exec, httpGet, tcpSocket) run inside the
container; the number of ready pods goes back into the stand-in's Deployment status. NodePorts are forwarded from
127.0.0.1 on the host into that namespace (``setns``, which needs root), so the addresses the manager computes from
the node's InternalIP and the Services' NodePorts really answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import threading
import time
from typing import Any

from k8s_standin import DEPLOYMENTS, ApiServer

from clipper_core.container_manager import CLIPPER_DOCKER_LABEL

logger = logging.getLogger(__name__)

POD_LABEL = "ai.clipper.test.pod-of"
RUN_LABEL = "ai.clipper.test.kubelet"
CLONE_NEWNET = 0x40000000


def _connect_in_netns(netns: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` inside the network namespace at path ``netns``."""
    result: dict[str, Any] = {}

    def run() -> None:  # setns changes only this thread's namespace, and the thread ends right after
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns failed")
                return
            result["sock"] = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if "sock" not in result:
        raise result.get("error") or OSError("connect timed out")
    sock: socket.socket = result["sock"]
    sock.settimeout(None)
    return sock


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class Forwarder:
    """Listens on 127.0.0.1:``listen`` and forwards each connection to ``target`` inside ``netns``."""

    def __init__(self, netns: str, listen: int, target: int) -> None:
        self.netns, self.target = netns, target
        self.server = socket.create_server(("127.0.0.1", listen))
        self.server.settimeout(0.5)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True, name=f"nodeport-{listen}")
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = _connect_in_netns(self.netns, self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.server.close()


def _probe_command(probe: dict[str, Any]) -> list[str] | None:
    if "exec" in probe:
        return list(probe["exec"]["command"])
    if "httpGet" in probe:
        url = f"http://127.0.0.1:{probe['httpGet']['port']}{probe['httpGet'].get('path', '/')}"
        return ["python", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"]
    if "tcpSocket" in probe:
        port = probe["tcpSocket"]["port"]
        return ["python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"]
    return None


class DockerKubelet:
    """Runs the pods of one cluster's Deployments (in one namespace) as Docker containers until :meth:`stop`."""

    def __init__(self, server: ApiServer, client: Any, cluster: str, namespace: str, services: list[str]) -> None:
        self.server, self.client, self.cluster, self.namespace = server, client, cluster, namespace
        self.run_id = f"{cluster}-{os.getpid()}"
        self.ready: dict[str, int] = {}
        self._ready_pods: set[str] = set()
        self.forwarders: dict[int, Forwarder] = {}
        self.pause = client.containers.run(
            _pause_image(),
            ["sleep", "infinity"],
            name=f"{cluster}-pause",
            network_mode="none",
            extra_hosts=dict.fromkeys(services, "127.0.0.1"),
            labels={RUN_LABEL: self.run_id},
            detach=True,
        )
        self.pause.reload()
        self.netns = f"/proc/{self.pause.attrs['State']['Pid']}/ns/net"
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._loop, daemon=True, name="docker-kubelet")
        handler = server.handler
        previous = handler.pod_behaviour

        def behaviour(dep: dict[str, Any]) -> Any:
            if (dep["metadata"].get("labels") or {}).get(CLIPPER_DOCKER_LABEL) == cluster:
                return self.ready.get(dep["metadata"]["name"], 0)
            return previous(dep)

        server.call(lambda: setattr(handler, "pod_behaviour", behaviour))
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - reported by the test through .errors
                logger.warning("kubelet step failed: %s", exc)
                self.errors.append(repr(exc))
            self._stop.wait(1.0)

    def _containers(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}))

    def step(self) -> None:
        handler, ns, cluster = self.server.handler, self.namespace, self.cluster

        def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            import kmock

            mine = [
                o
                for _, o in handler.live(DEPLOYMENTS, ns)
                if (o["metadata"].get("labels") or {}).get(CLIPPER_DOCKER_LABEL) == cluster
            ]
            services = [
                o
                for _, o in handler.live(kmock.resource("", "v1", "services"), ns)
                if (o["metadata"].get("labels") or {}).get(CLIPPER_DOCKER_LABEL) == cluster
            ]
            return mine, services

        deployments, services = self.server.call(snapshot)
        wanted = {d["metadata"]["name"]: d for d in deployments}
        running: dict[str, list[Any]] = {}
        for c in self._containers():
            if c.id == self.pause.id:
                continue
            owner = c.labels.get(POD_LABEL, "")
            if owner not in wanted:
                c.remove(force=True)
                continue
            running.setdefault(owner, []).append(c)
        for name, dep in wanted.items():
            want = int(dep["spec"].get("replicas", 1))
            pods = sorted(running.get(name, []), key=lambda c: c.name)
            for surplus in pods[want:]:
                surplus.remove(force=True)
            have = {c.name for c in pods[:want]}
            for i in range(want):
                if f"{name}-{i}" not in have and not self._stop.is_set():
                    self._start_pod(dep, i)
            self.ready[name] = sum(self._is_ready(dep, c) for c in pods[:want])
        for svc in services:
            for port in svc["spec"].get("ports", []):
                node_port = port.get("nodePort")
                if node_port and node_port not in self.forwarders:
                    self.forwarders[node_port] = Forwarder(self.netns, node_port, port["targetPort"])

    def _start_pod(self, dep: dict[str, Any], index: int) -> None:
        (spec,) = dep["spec"]["template"]["spec"]["containers"]  # every Clipper pod has one container
        image = spec["image"]
        if spec.get("imagePullPolicy") == "Always":
            self.client.images.pull(image)
        kwargs: dict[str, Any] = {
            "name": f"{dep['metadata']['name']}-{index}",
            "environment": {e["name"]: e["value"] for e in spec.get("env", [])},
            "network_mode": f"container:{self.pause.id}",
            "labels": {RUN_LABEL: self.run_id, POD_LABEL: dep["metadata"]["name"]},
            "detach": True,
        }
        if spec.get("command"):
            kwargs["entrypoint"] = spec["command"]
        self.client.containers.run(image, spec.get("args") or None, **kwargs)

    def _is_ready(self, dep: dict[str, Any], container: Any) -> bool:
        if container.name in self._ready_pods:
            return True
        container.reload()
        if container.status != "running":
            return False
        probe = dep["spec"]["template"]["spec"]["containers"][0].get("readinessProbe")
        command = _probe_command(probe) if probe else None
        if command is not None and container.exec_run(command).exit_code != 0:
            return False
        self._ready_pods.add(container.name)
        return True

    def stop(self) -> None:
        """Stop the loop, the forwarders and every container it started (the pause container last)."""
        self._stop.set()
        self.thread.join(120)  # a step may be pulling an image
        for fwd in self.forwarders.values():
            fwd.close()
        deadline = time.monotonic() + 60
        while (left := self._containers()) and time.monotonic() < deadline:
            for c in sorted(left, key=lambda c: c.id == self.pause.id):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
        if left:
            self.errors.append(f"containers left behind: {[c.name for c in left]}")


def _pause_image() -> str:
    from clipper_core import __version__
    from clipper_core.container_manager import clipper_registry

    return f"{clipper_registry()}/redis:{__version__}"
