"""Kubernetes container manager plugin for Clipper in Python (distribution ``clipper-kubernetes``).

``KubernetesContainerManager`` runs Redis, the management frontend, the query frontends and every model replica as
``apps/v1`` Deployments and Services labelled ``ai.clipper.container.label=<cluster_name>`` (reference §6.4). The
``kubernetes`` client is imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from clipper_k8s.manager import KubernetesContainerManager

__all__ = ["KubernetesContainerManager"]
