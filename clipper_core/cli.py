"""The ``clipper`` command: start, stop and inspect a cluster, list plugins, send a prediction.

Every :class:`ClipperException` ends the command with a one-line ``error: ...`` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.errors import ClipperException

logger = logging.getLogger(__name__)

DEFAULT_MANAGER = "local"
DEFAULT_CLUSTER = "default"


def _manager_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-name", default=DEFAULT_CLUSTER, help="cluster name (default: %(default)s)")
    p.add_argument("--manager", default=DEFAULT_MANAGER, help="container manager plugin (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipper", description="Manage a Clipper prediction-serving cluster")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("start", help="start a cluster")
    _manager_options(p)
    p.add_argument("--query-port", type=int, default=1337)
    p.add_argument("--mgmt-port", type=int, default=1338)
    p.add_argument("--rpc-port", type=int, default=7000)
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--redis-ip", default=None, help="use this Redis instead of starting one")
    p.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE, help="prediction cache size in bytes")

    p = sub.add_parser("stop", help="stop a cluster and all its model replicas")
    _manager_options(p)
    p.add_argument("--kill", action="store_true", help="kill instead of stopping gracefully")

    p = sub.add_parser("status", help="show applications, models, replicas and addresses")
    _manager_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("plugins", help="list installed plugins")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("predict", help="send one prediction request to an application")
    _manager_options(p)
    p.add_argument("app", help="application name")
    p.add_argument("query", help='a full body such as \'{"input": [1.0, 2.0]}\' or just the input value')
    p.add_argument("--addr", default=None, help="query frontend host:port (default: from the cluster)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default: %(default)s)")

    p = sub.add_parser("images", help="build the Docker images (needs the clipper-docker plugin)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="e.g. `build`, `build --help`")
    return parser


def cmd_images(args: argparse.Namespace) -> int:
    try:
        from clipper_docker import images
    except ImportError as exc:
        msg = f"`clipper images` needs the Docker plugin: pip install clipper-docker ({exc})"
        raise ClipperException(msg) from exc
    return int(images.main(list(args.rest) or ["--help"]))


def make_manager(args: argparse.Namespace, **options: Any) -> Any:
    """Instantiate the chosen container manager, passing only the options its constructor accepts."""
    from clipper_core.errors import UnknownPluginError
    from clipper_core.registry import PluginHost

    registry = PluginHost().container_managers()
    try:
        cls = registry.get(args.manager)
    except UnknownPluginError as exc:
        installed = ", ".join(registry.names()) or "none"
        msg = f"Unknown container manager {args.manager!r}. Installed container managers: {installed}"
        raise ClipperException(msg) from exc
    kwargs: dict[str, Any] = {"cluster_name": args.cluster_name, **options}
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        dropped = sorted(k for k in kwargs if k not in params)
        if dropped:
            logger.info("container manager %r ignores %s", args.manager, ", ".join(dropped))
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(**kwargs)


def _connection(args: argparse.Namespace) -> Any:
    from clipper_core.admin import ClipperConnection

    conn = ClipperConnection(make_manager(args))
    conn.connect()
    return conn


def cmd_start(args: argparse.Namespace) -> int:
    from clipper_core.admin import ClipperConnection

    cm = make_manager(
        args,
        clipper_query_port=args.query_port,
        clipper_management_port=args.mgmt_port,
        clipper_rpc_port=args.rpc_port,
        redis_ip=args.redis_ip,
        redis_port=args.redis_port,
    )
    conn = ClipperConnection(cm)
    conn.start_clipper(cache_size=args.cache_size)
    print(f"Clipper cluster {args.cluster_name!r} is running")
    print(f"  query frontend:      http://{cm.get_query_addr()}")
    print(f"  management frontend: http://{cm.get_admin_addr()}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from clipper_core.admin import ClipperConnection

    ClipperConnection(make_manager(args)).stop_all(graceful=not args.kill)
    print(f"Clipper cluster {args.cluster_name!r} stopped")
    return 0


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


def cmd_status(args: argparse.Namespace) -> int:
    status = collect_status(_connection(args))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
        return 0
    cluster = status["cluster"]
    print(f"Cluster {args.cluster_name!r} ({args.manager})")
    for key in sorted(cluster):
        if key not in ("cluster_name", "manager"):
            print(f"  {key}: {cluster[key]}")
    print(f"Applications ({len(status['applications'])}):")
    for a in status["applications"]:
        links = ", ".join(f"{n} (current version {v})" for n, v in a["current_versions"].items()) or "no linked model"
        print(f"  {a['name']}  input_type={a['input_type']}  slo={a['latency_slo_micros']}us  -> {links}")
    print(f"Models ({len(status['models'])}):")
    for m in status["models"]:
        mark = "*" if m["current"] else " "
        running = m.get("running_replicas")
        reps = m["connected_replicas"]
        state = "containerless" if running is None and m["image"] == "NO_CONTAINER" else f"running={running}"
        detail = " ".join(f"#{e['replica_id']}:{e['status']}" for e in reps)
        head = f" {mark}{m['name']}:{m['version']}  input_type={m['input_type']}  {state}"
        print(f"{head}  connected={len(reps)} {detail}".rstrip())
        for e in reps:
            if e.get("error"):
                print(f"      replica #{e['replica_id']} error: {e['error']}")
    if status["models"]:
        print("(* = current version)")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from clipper_core.plugins import list_plugins

    plugins = list_plugins()
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    width = max((len(p["name"]) for p in plugins), default=4)
    for p in plugins:
        print(f"{p['name']:<{width}}  {p['dist']} {p['version']}  hooks: {', '.join(p['hooks']) or '-'}")
    return 0


def parse_query(text: str) -> Any:
    """The request body for ``clipper predict``: a full body, or just the input value wrapped as ``{"input": ...}``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        msg = f"QUERY is not valid JSON: {exc}"
        raise ClipperException(msg) from exc
    if isinstance(value, dict) and ("input" in value or "input_batch" in value):
        return value
    return {"input": value}


def cmd_predict(args: argparse.Namespace) -> int:
    from clipper_core._admin_http import request

    body = parse_query(args.query)
    addr = args.addr
    if addr is None:
        cm = make_manager(args)
        cm.connect()
        addr = cm.get_query_addr()
    url = f"http://{addr}/{args.app}/predict"
    r = request("POST", url, addr, timeout=args.timeout, json=body)
    try:
        print(json.dumps(r.json()))
    except ValueError:
        print(r.text)
    if r.status_code != 200:
        print(f"error: HTTP {r.status_code}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "start": cmd_start,
    "stop": cmd_stop,
    "status": cmd_status,
    "plugins": cmd_plugins,
    "predict": cmd_predict,
    "images": cmd_images,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Errors reach the user as one line from main(); library log records only show with --verbose.
    level = logging.INFO if args.verbose else logging.CRITICAL
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ClipperException as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `clipper status --json | head`: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
