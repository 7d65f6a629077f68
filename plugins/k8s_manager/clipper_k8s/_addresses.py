"""Where the cluster's services answer: node addresses, NodePorts, LoadBalancer ingress, ``kubectl proxy`` URLs.

The original's rules (reference §6.4): a LoadBalancer's ingress address wins; otherwise, with
``kubernetes_proxy_addr``, ``<proxy>/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy``; otherwise the first
node's ExternalDNS (InternalIP with ``useInternalIP``) and the Service's NodePort.
"""

from __future__ import annotations

import logging
from typing import Any

from clipper_core.errors import ClipperException, ContainerManagerError
from clipper_k8s import _manifests as mf
from clipper_k8s._api import Apis
from clipper_k8s._config import LOAD_BALANCER

logger = logging.getLogger(__name__)

NO_NODE_ADDRESS = (
    "Error connecting to Kubernetes cluster. No external node addresses found. You may pass in "
    "KubernetesContainerManager(useInternalIP=True) to connect to local Kubernetes cluster"
)


class AddressesMixin:
    """Needs the manager's API objects, namespace, cluster name, proxy and the ports ``connect()`` read."""

    _apis: Apis
    k8s_namespace: str
    cluster_name: str
    request_timeout: float
    useInternalIP: bool  # noqa: N815 - the original's name
    use_k8s_proxy: bool
    kubernetes_proxy_addr: str | None
    external_node_hosts: list[str]
    clipper_query_port: int
    clipper_management_port: int
    clipper_query_ip: str | None
    clipper_management_ip: str | None

    def _errors(self, what: str, error: type[ClipperException] = ContainerManagerError) -> Any:
        raise NotImplementedError

    def _read_service(self, name: str) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        with self._errors(f"Could not connect to Clipper Kubernetes cluster. Reading Service {name}"):
            try:
                return self._apis.core.read_namespaced_service(
                    name, self.k8s_namespace, _request_timeout=self.request_timeout
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def _service_endpoint(self, service: Any, port_name: int) -> tuple[int, str | None]:
        """(port, LoadBalancer IP or None): the NodePort by port name, or the service port behind a LoadBalancer."""
        port = next((p for p in service.spec.ports or [] if str(p.name) == str(port_name)), None)
        if port is None:
            msg = f"Service {service.metadata.name} has no port named {port_name!r}"
            raise ContainerManagerError(msg)
        if service.spec.type == LOAD_BALANCER:
            ingress = (
                (service.status.load_balancer.ingress or []) if service.status and service.status.load_balancer else []
            )
            ip = next((i.ip or i.hostname for i in ingress if i.ip or i.hostname), None)
            if ip is None:
                msg = (
                    f"LoadBalancer Service {self.k8s_namespace}/{service.metadata.name} has no ingress address yet; "
                    "wait for the cloud load balancer and call connect() again"
                )
                raise ContainerManagerError(msg)
            return int(port.port), ip
        return int(port.node_port or port.port), None

    def _node_hosts(self, required: bool = True) -> list[str]:
        with self._errors("Listing the cluster's nodes"):
            nodes = self._apis.core.list_node(_request_timeout=self.request_timeout).items
        addresses = [(a.type, a.address) for n in nodes for a in (n.status.addresses or []) if n.status]
        hosts = [addr for kind, addr in addresses if kind == "ExternalDNS"]
        if not hosts and self.useInternalIP:
            logger.warning("No external node addresses found. Using Internal IP address")
            hosts = [addr for kind, addr in addresses if kind == "InternalIP"]
        if not hosts and required:
            raise ContainerManagerError(NO_NODE_ADDRESS)
        return hosts

    def _addr(self, service: str, port: int, ip: str | None, internal_port: int) -> str:
        if ip is not None:
            return f"{ip}:{port}"
        if self.use_k8s_proxy:
            return (
                f"{self.kubernetes_proxy_addr}/api/v1/namespaces/{self.k8s_namespace}/services/"
                f"{service}:{internal_port}/proxy"
            )
        if not self.external_node_hosts:
            msg = f"No address for Clipper cluster '{self.cluster_name}' yet: call connect() or start_clipper() first"
            raise ContainerManagerError(msg)
        return f"{self.external_node_hosts[0]}:{port}"

    def get_admin_addr(self) -> str:
        return self._addr(
            mf.mgmt_name(self.cluster_name), self.clipper_management_port, self.clipper_management_ip, mf.MGMT_PORT
        )

    def get_query_addr(self) -> str:
        return self._addr(
            mf.query_service_name(self.cluster_name), self.clipper_query_port, self.clipper_query_ip, mf.QUERY_PORT
        )

    def get_metric_addr(self) -> str:
        return self.get_query_addr()  # the query frontend serves /metrics itself
