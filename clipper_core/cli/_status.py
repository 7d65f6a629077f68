"""``clipper status``: everything about a cluster, gathered into one JSON-serialisable dict."""

from __future__ import annotations

import logging
from typing import Any

from clipper_core.errors import ClipperException

logger = logging.getLogger(__name__)


def collect_status(conn: Any) -> dict[str, Any]:
    """Everything ``clipper status`` shows, as one JSON-serialisable dict."""
    cm = conn.cm
    try:
        addresses: dict[str, Any] = dict(cm.describe())
    except ClipperException:
        addresses = {"query": cm.get_query_addr(), "admin": cm.get_admin_addr()}
    replicas = conn.get_all_model_replicas(verbose=True)
    connected: dict[str, list[dict[str, Any]]] = {}
    for r in replicas:
        entry = {"replica_id": r.get("model_replica_id"), "status": r.get("status", "connected")}
        entry.update({k: r[k] for k in ("pid", "error") if r.get(k)})
        connected.setdefault(f"{r['model_name']}:{r['model_version']}", []).append(entry)
    models = []
    for m in sorted(conn.get_all_models(verbose=True), key=lambda m: (m["model_name"], str(m["model_version"]))):
        key = f"{m['model_name']}:{m['model_version']}"
        entry = {
            "name": m["model_name"],
            "version": m["model_version"],
            "current": bool(m.get("is_current_version")),
            "input_type": m.get("input_type"),
            "image": m.get("container_name"),
            "connected_replicas": sorted(connected.get(key, []), key=lambda e: str(e["replica_id"])),
        }
        if entry["image"] != "NO_CONTAINER":
            try:
                entry["running_replicas"] = cm.get_num_replicas(m["model_name"], str(m["model_version"]))
            except ClipperException as exc:
                entry["running_replicas"] = None
                logger.info("get_num_replicas(%s) failed: %s", key, exc.msg)
        models.append(entry)
    current = {m["name"]: m["version"] for m in models if m["current"]}
    apps = sorted(conn.get_all_apps(verbose=True), key=lambda a: a["name"])
    for a in apps:
        linked = a.get("linked_models") or []
        a["current_versions"] = {name: current.get(name) for name in linked}
    return {"cluster": addresses, "applications": apps, "models": models, "replicas": replicas}
