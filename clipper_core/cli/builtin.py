"""The core's own ``clipper`` commands (``start``, ``stop``, ``status``, ``plugins``, ``predict``).

They are registered through :func:`~clipper_core.hookspecs.clipper_register_commands` (``trylast``), exactly like a
plugin's commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clipper_core.cli._status import collect_status
from clipper_core.commands import CommandContext, CommandRegistry
from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.errors import DeploymentError, InputDecodeError, UnknownPluginError
from clipper_core.hookspecs import hookimpl


def _connection(args: argparse.Namespace, ctx: CommandContext) -> Any:
    from clipper_core.admin import ClipperConnection

    conn = ClipperConnection(ctx.make_manager(args), plugins=ctx.host)
    conn.connect()
    return conn


def _start_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE, help="prediction cache size in bytes")


def cmd_start(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_core.admin import ClipperConnection

    cm = ctx.make_manager(args)
    conn = ClipperConnection(cm, plugins=ctx.host)
    conn.start_clipper(cache_size=args.cache_size)
    print(f"Clipper cluster {cm.cluster_name!r} is running")
    print(f"  query frontend:      http://{cm.get_query_addr()}")
    print(f"  management frontend: http://{cm.get_admin_addr()}")
    return 0


def _stop_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kill", action="store_true", help="kill instead of stopping gracefully")


def cmd_stop(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_core.admin import ClipperConnection

    cm = ctx.make_manager(args)
    ClipperConnection(cm, plugins=ctx.host).stop_all(graceful=not args.kill)
    print(f"Clipper cluster {cm.cluster_name!r} stopped")
    return 0


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def cmd_status(args: argparse.Namespace, ctx: CommandContext) -> int:
    status = collect_status(_connection(args, ctx))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
        return 0
    cluster = status["cluster"]
    print(f"Cluster {cluster.get('cluster_name')!r} ({args.manager})")
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


def cmd_plugins(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_core.plugins import list_plugins

    plugins = list_plugins(ctx.host.pm)
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
        raise InputDecodeError(msg) from exc
    if isinstance(value, dict) and ("input" in value or "input_batch" in value):
        return value
    return {"input": value}


def _predict_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", help="application name")
    p.add_argument("query", help="a full body such as '{\"input\": [1.0, 2.0]}' or just the input value")
    p.add_argument("--addr", default=None, help="query frontend host:port (default: from the cluster)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default: %(default)s)")


def cmd_predict(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_core._admin_http import request

    body = parse_query(args.query)
    addr = args.addr
    if addr is None:
        cm = ctx.make_manager(args)
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


DEFAULT_DEPLOYER = "python_closure"


def _deploy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (and application name with --app)")
    p.add_argument("func", help="the predict function: package.module:function or path/to/file.py:function")
    p.add_argument("--deployer", default=DEFAULT_DEPLOYER, help="deployer plugin (default: %(default)s)")
    p.add_argument("--version", default="1", help="model version (default: %(default)s)")
    p.add_argument("--input-type", default="doubles", help="input type (default: %(default)s)")
    p.add_argument("--num-replicas", type=int, default=1, help="replicas to start (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=-1, help="fixed batch size; -1 adapts it (default)")
    p.add_argument("--app", action="store_true", help="also register an application NAME and link the model to it")
    p.add_argument("--default-output", default="None", help="the application's default output (with --app)")
    p.add_argument("--slo-micros", type=int, default=3000000, help="the application's latency SLO (with --app)")
    p.add_argument(
        "--model",
        metavar="REF",
        help="the framework model, for deployers that take one (pytorch, onnx): package.module:attr or "
        "path/to/file.py:attr naming it, or a model file (e.g. model.onnx)",
    )


def cmd_deploy(args: argparse.Namespace, ctx: CommandContext) -> int:
    from clipper_core.deployer import load_function, load_model_ref

    deployers = ctx.host.deployers()
    if args.deployer not in deployers:
        installed = ", ".join(deployers.names()) or "none (pip install clipper-deployers)"
        msg = f"Unknown deployer {args.deployer!r}. Installed deployers: {installed}"
        raise UnknownPluginError(msg)
    deployer = deployers.get(args.deployer)
    func = load_function(args.func)
    options: dict[str, Any] = {"num_replicas": args.num_replicas, "batch_size": args.batch_size}
    model_parameter = getattr(deployer, "MODEL_PARAMETER", None)
    if model_parameter is not None and args.model is None:
        msg = f"Deployer {args.deployer!r} needs --model REF (its {model_parameter})"
        raise DeploymentError(msg)
    if args.model is not None:
        if model_parameter is None:
            msg = f"Deployer {args.deployer!r} takes no --model"
            raise DeploymentError(msg)
        options[model_parameter] = load_model_ref(args.model)
    conn = _connection(args, ctx)
    if args.app:
        deployer.create_endpoint(
            conn,
            args.name,
            args.input_type,
            func,
            default_output=args.default_output,
            version=args.version,
            slo_micros=args.slo_micros,
            **options,
        )
        print(f"Deployed {args.name}:{args.version} and linked it to application {args.name!r}")
    else:
        deployer.deploy(conn, args.name, args.version, args.input_type, func, **options)
        print(f"Deployed {args.name}:{args.version}")
    return 0


@hookimpl(trylast=True)
def clipper_register_commands(commands: CommandRegistry) -> None:
    commands.add("start", help="start a cluster", run=cmd_start, configure=_start_options, manager_options=True)
    commands.add(
        "stop",
        help="stop a cluster and all its model replicas",
        run=cmd_stop,
        configure=_stop_options,
        manager_options=True,
    )
    commands.add(
        "status",
        help="show applications, models, replicas and addresses",
        run=cmd_status,
        configure=_json_option,
        manager_options=True,
    )
    commands.add("plugins", help="list installed plugins", run=cmd_plugins, configure=_json_option)
    commands.add(
        "deploy",
        help="deploy a predict function as a model (through a deployer plugin)",
        run=cmd_deploy,
        configure=_deploy_options,
        manager_options=True,
    )
    commands.add(
        "predict",
        help="send one prediction request to an application",
        run=cmd_predict,
        configure=_predict_options,
        manager_options=True,
    )
