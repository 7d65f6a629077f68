"""A stateful Kubernetes API server stand-in for the tests: kmock's ``KubernetesEmulator`` on a loopback port.

kmock (PyPI) supplies the aiohttp server, the request parsing and the in-memory object store with fetch, patch,
delete-by-name and 409 on a duplicate create. kmock 0.8 lacks what a Deployment-managing client needs, so
:class:`StandIn` adds: namespaces (``/api/v1/namespaces[/name]``, which kmock cannot parse), label selectors on
lists, delete-collection, the ``scale`` and ``log`` subresources, server-side defaults (uid, resourceVersion,
creationTimestamp, generation, nodePorts, LoadBalancer ingress), 404 for objects in a namespace that does not exist,
injected faults (``faults``: status answers for matching requests), and a kubelet/controller emulation that gives
each Deployment a ReplicaSet and pods and marks them available, or failing, by the rule in ``pod_behaviour``.

kmock rather than mockernetes, the other stateful stand-in on PyPI: every mockernetes release needs Python 3.12,
and the project supports 3.10 and runs 3.11 here.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import parsing

NODE_PORTS = itertools.count(30000 + os.getpid() % 2000)


def free_node_port() -> int:
    """The next port of the NodePort range that nothing on this host listens on (e2e tests forward it)."""
    for port in NODE_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 30000 + (port - 30000) % 2768))
            except OSError:
                continue
            return int(s.getsockname()[1])
    msg = "unreachable: the port counter never ends"
    raise RuntimeError(msg)


_NS_PATH = re.compile(r"/api/v1/namespaces(?:/([^/]+))?/?")


@dataclass
class Fault:
    """Answer requests whose method and path match with ``status`` (e.g. 403 Forbidden from RBAC)."""

    method: str
    path: str  # a regular expression, matched against the whole path
    status: int
    reason: str
    message: str


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return aiohttp.web.json_response(body, status=code)


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


KINDS = {
    "deployments": "Deployment",
    "replicasets": "ReplicaSet",
    "pods": "Pod",
    "services": "Service",
    "configmaps": "ConfigMap",
    "replicationcontrollers": "ReplicationController",
    "nodes": "Node",
    "clusterroles": "ClusterRole",
    "clusterrolebindings": "ClusterRoleBinding",
}
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
REPLICASETS = kmock.resource("apps", "v1", "replicasets")
PODS = kmock.resource("", "v1", "pods")
NODES = kmock.resource("", "v1", "nodes")


class StandIn(kmock.KubernetesEmulator):
    """See the module docstring. Use :class:`ApiServer` to run it in a background thread."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        #: deployment dict -> "ready" | "pending" | the number of ready pods | (reason, message) for a container
        #: that waits for good.
        self.pod_behaviour: Callable[[dict[str, Any]], Any] = lambda dep: "ready"
        self.lb_ingress_ip: str | None = "192.0.2.10"
        for resource in (
            DEPLOYMENTS,
            REPLICASETS,
            PODS,
            NODES,
            kmock.resource("", "v1", "services"),
            kmock.resource("", "v1", "configmaps"),
            kmock.resource("", "v1", "replicationcontrollers"),
            kmock.resource("rbac.authorization.k8s.io", "v1", "clusterroles"),
            kmock.resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
        ):
            self.resources[resource] = kmock.ResourceInfo(kind=KINDS[resource.plural], namespaced=resource != NODES)

    # -- objects -------------------------------------------------------------------------------------------------

    def live(self, resource: Any = None, namespace: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
        """(resource, raw object) of every object that exists, optionally of one resource and namespace."""
        found = []
        for (res, ns, _name), obj in list(self.objects.items()):
            if obj.deleted or (resource is not None and res != resource) or (namespace and ns != namespace):
                continue
            found.append((res, obj.raw))
        return found

    def put(self, resource: Any, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("generation", 1)
        if namespace:
            meta["namespace"] = namespace
        key = (resource, namespace, meta["name"])
        if key not in self.objects:
            self.objects[key] = body
        elif self.objects[key].deleted:
            self.objects[key].create(body)
        elif self.objects[key].raw.get("status") != body.get("status"):
            self.objects[key].patch({"status": body.get("status")})
        return self.objects[key].raw

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw.read()
        path, method = raw.path, raw.method.upper()
        for fault in self.faults:
            if fault.method.upper() == method and re.fullmatch(fault.path, path):
                return _status(fault.status, fault.reason, fault.message)
        m = _NS_PATH.fullmatch(path)
        if m:
            return await self._namespace_call(method, m.group(1), raw)
        parsed = parsing.parse_path(path)
        if parsed.group is None or parsed.plural is None:
            return await super().__call__(raw)
        resource = kmock.resource(parsed.group, parsed.version, parsed.plural)
        ns = parsed.namespace
        if ns is not None and ns not in self.namespaces:
            return _status(404, "NotFound", f'namespaces "{ns}" not found')
        async with self._lock:
            if parsed.name is None and method == "GET" and raw.query.get("watch") != "true":
                return self._list(resource, ns, raw.query.get("labelSelector", ""))
            if parsed.name is None and method == "DELETE":
                return self._delete_collection(resource, ns, raw.query.get("labelSelector", ""))
            if parsed.name is None and method == "POST":
                body = json.loads(await raw.text())
                key = (resource, ns, body.get("metadata", {}).get("name"))
                if key in self.objects and not self.objects[key].deleted:
                    return _status(409, "AlreadyExists", f'{parsed.plural} "{key[2]}" already exists')
                return aiohttp.web.json_response(self._created(resource, ns, body), status=201)
            if parsed.subresource == "scale":
                return await self._scale(method, ns, parsed.name, raw)
            if parsed.subresource == "log":
                return aiohttp.web.Response(text=f"log of pod {parsed.name}, container {raw.query.get('container')}\n")
        return await super().__call__(raw)

    async def _namespace_call(self, method: str, name: str | None, raw: aiohttp.web.BaseRequest) -> Any:
        if name is None and method == "POST":
            body = json.loads(await raw.text())
            name = body["metadata"]["name"]
            if name in self.namespaces:
                return _status(409, "AlreadyExists", f'namespaces "{name}" already exists')
            self.namespaces[name] = {"apiVersion": "v1", "kind": "Namespace", **body, "status": {"phase": "Active"}}
            return aiohttp.web.json_response(self.namespaces[name], status=201)
        if name is None and method == "GET":
            return aiohttp.web.json_response(
                {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": list(self.namespaces.values())}
            )
        if name is not None and method == "GET":
            if name not in self.namespaces:
                return _status(404, "NotFound", f'namespaces "{name}" not found')
            return aiohttp.web.json_response(self.namespaces[name])
        if name is not None and method == "DELETE" and name in self.namespaces:
            return aiohttp.web.json_response(self.namespaces.pop(name))
        return _status(405, "MethodNotAllowed", f"{method} on namespaces is not emulated")

    def _list(self, resource: Any, ns: str | None, selector: str) -> aiohttp.web.Response:
        items = [
            obj
            for _, obj in self.live(resource, ns)
            if selector_matches(selector, obj.get("metadata", {}).get("labels") or {})
        ]
        kind = KINDS.get(resource.plural, "Object") + "List"
        return aiohttp.web.json_response(
            {"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items}
        )

    def _delete_collection(self, resource: Any, ns: str | None, selector: str) -> aiohttp.web.Response:
        for (res, obj_ns, _name), obj in list(self.objects.items()):
            if res == resource and not obj.deleted and (ns is None or obj_ns == ns):
                if selector_matches(selector, obj.raw.get("metadata", {}).get("labels") or {}):
                    obj.delete()
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"})

    def _created(self, resource: Any, ns: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if resource.plural == "services":
            spec = body.setdefault("spec", {})
            spec.setdefault("clusterIP", f"10.96.0.{len(self.live(resource)) + 10}")
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                for port in spec.get("ports", []):
                    port.setdefault("nodePort", free_node_port())
            if spec.get("type") == "LoadBalancer" and self.lb_ingress_ip:
                body["status"] = {"loadBalancer": {"ingress": [{"ip": self.lb_ingress_ip}]}}
        return self.put(resource, ns, body)

    async def _scale(self, method: str, ns: str | None, name: str, raw: aiohttp.web.BaseRequest) -> Any:
        key = (DEPLOYMENTS, ns, name)
        if key not in self.objects or self.objects[key].deleted:
            return _status(404, "NotFound", f'deployments.apps "{name}" not found')
        if method == "PATCH":
            replicas = json.loads(await raw.text())["spec"]["replicas"]
            dep = self.objects[key].raw
            self.objects[key].patch(
                {"spec": {"replicas": replicas}, "metadata": {"generation": dep["metadata"].get("generation", 1) + 1}}
            )
        dep = self.objects[key].raw
        return aiohttp.web.json_response(
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": dep["spec"].get("replicas", 1)},
                "status": {"replicas": (dep.get("status") or {}).get("replicas", 0)},
            }
        )

    # -- controller and kubelet emulation ---------------------------------------------------------------------

    async def reconcile_forever(self, interval: float = 0.1) -> None:
        while True:
            async with self._lock:
                self.reconcile()
            await asyncio.sleep(interval)

    def reconcile(self) -> None:
        for _, dep in self.live(DEPLOYMENTS):
            ns, name = dep["metadata"].get("namespace"), dep["metadata"]["name"]
            template = dep["spec"]["template"]
            labels = dict(template["metadata"].get("labels") or {})
            owner = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": dep["metadata"]["uid"]}]
            rs_name = f"{name}-7f9c"
            if (REPLICASETS, ns, rs_name) not in self.objects or self.objects[(REPLICASETS, ns, rs_name)].deleted:
                self.put(
                    REPLICASETS,
                    ns,
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "metadata": {"name": rs_name, "labels": labels, "ownerReferences": owner},
                        "spec": {
                            "replicas": dep["spec"].get("replicas", 1),
                            "selector": dep["spec"]["selector"],
                            "template": template,
                        },
                    },
                )
            want = int(dep["spec"].get("replicas", 1))
            behaviour = self.pod_behaviour(dep)
            pods = sorted(
                p["metadata"]["name"] for _, p in self.live(PODS, ns) if p["metadata"]["name"].startswith(rs_name + "-")
            )
            for extra in pods[want:]:
                self.objects[(PODS, ns, extra)].delete()
            for i in range(want):
                pod_name = f"{rs_name}-{i:05d}"
                pod_state = behaviour if not isinstance(behaviour, int) else "ready" if i < behaviour else "pending"
                self.put(PODS, ns, self._pod(pod_name, labels, template["spec"], pod_state))
            ready = want if behaviour == "ready" else min(behaviour, want) if isinstance(behaviour, int) else 0
            status = {
                "observedGeneration": dep["metadata"].get("generation", 1),
                "replicas": want,
                "updatedReplicas": want,
                "readyReplicas": ready or None,
                "availableReplicas": ready or None,
                "unavailableReplicas": (want - ready) or None,
            }
            if dep.get("status") != status:
                self.objects[(DEPLOYMENTS, ns, name)].patch({"status": status})

    @staticmethod
    def _pod(name: str, labels: dict[str, str], spec: dict[str, Any], behaviour: Any) -> dict[str, Any]:
        statuses = []
        for c in spec.get("containers", []):
            if behaviour == "ready":
                state: dict[str, Any] = {"running": {"startedAt": _now()}}
            elif behaviour == "pending":
                state = {"waiting": {"reason": "ContainerCreating"}}
            else:
                state = {"waiting": {"reason": behaviour[0], "message": behaviour[1]}}
            statuses.append(
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": behaviour == "ready",
                    "restartCount": 0,
                    "state": state,
                }
            )
        phase = "Running" if behaviour == "ready" else "Pending"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"phase": phase, "containerStatuses": statuses},
        }


class ApiServer:
    """Runs a :class:`StandIn` on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.handler: StandIn | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="k8s-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            msg = "the Kubernetes API stand-in did not start within 30 s"
            raise RuntimeError(msg)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with StandIn() as handler, kmock.Server(handler) as server:
            self.handler = handler
            self.url = str(server.url).rstrip("/")
            controller = asyncio.ensure_future(handler.reconcile_forever())
            self._ready.set()
            await self._stop.wait()
            controller.cancel()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the server's loop while holding the store's lock (for test set-up and assertions)."""

        async def run() -> Any:
            assert self.handler is not None
            async with self.handler._lock:
                return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: str, context: str = "standin") -> str:
        """Write a kubeconfig for this server (token auth over plain HTTP) and return its path."""
        import yaml

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "standin-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        }
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path
