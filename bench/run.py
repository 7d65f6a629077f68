"""The Clipper-in-Python benchmark (DESIGN.md section 6). Run it through ``bash bench/run.sh`` (see bench/README.md).

One run:
  1. starts a local cluster (LocalContainerManager, free loopback ports, CLIPPER_HOME in a temp dir) and deploys
     ``noop``, ``batchable`` (adaptive batching) and ``batchable-b1`` (batch_size=1) with the closure deployer;
  2. drives each with wrk at 1, 16 and 64 connections (a warm-up run before every point), plus ``noop-cached``
     (one fixed body: every query after the first is a prediction-cache hit); reads GET /metrics around every
     point for the mean batch size and the number of default outputs;
  3. stops the cluster, then starts the baseline (bench/baseline_tornado.py) and every installed peer
     (bench/peers/, venvs in bench/.venv-peers/) one at a time and drives them the same way;
  4. prints ``MODEL c=N ...`` lines, ``RATIO`` lines and the batching ratio, and appends a section to
     bench/RESULTS.md.

Every process it starts is recorded in a state file; ``run.py --cleanup STATE`` (run by run.sh's trap) kills
whatever is left. ``run.py --profile`` is the py-spy mode behind bench/profile.sh.

The parts live next to this file: _paths.py (where things are), _procs.py (starting and stopping servers, the state
file, ``--cleanup``), _wrk.py (wrk runs and their ``Point``), _metrics.py (GET /metrics around a point),
_targets.py (the baseline and the peers), _report.py (ratios, medians over rounds, RESULTS.md) and _profile.py
(``--profile``). This file keeps the models, the orchestration (``Bench``), the options and ``main``; the models
stay here so the closure deployer still pickles them as functions of ``__main__`` (by value).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _metrics import Snapshot, point_defaults, point_mean_batch
from _paths import CLUSTER_NAME, RESULTS_DIR, RESULTS_MD, ROOT
from _procs import Processes, bound_run, cleanup_from_state
from _profile import profile
from _report import machine_info, median_points, ratio_lines, write_results
from _targets import PEERS, Target, wait_answering
from _wrk import Point, run_wrk, to_point, wrk_cpu_prefix

from clipper_core.ports import free_ports

# ---------------------------------------------------------------------------------------------- the models


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


def batchable(xs: list[list[float]]) -> list[str]:
    import time as _time

    _time.sleep(0.002 + 0.00005 * len(xs))
    return [str(sum(x)) for x in xs]


# (app = model name, function, app SLO in microseconds, batch_size)
OUR_MODELS = [
    ("noop", noop, 1_000_000, -1),
    ("batchable", batchable, 100_000, -1),
    ("batchable-b1", batchable, 100_000, 1),
]
OUR_TARGETS = ("noop", "noop-cached", "batchable", "batchable-b1")


# ---------------------------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace, procs: Processes) -> None:
        self.args = args
        self.procs = procs
        self.points: list[Point] = []
        self.peer_info: dict[str, str] = {}  # name -> version, or "SKIP: reason"
        self.logdir = RESULTS_DIR / f"logs-{dt.datetime.now():%Y%m%d-%H%M%S}"
        self.logdir.mkdir(parents=True, exist_ok=True)

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def drive(
        self,
        name: str,
        base_url: str,
        path: str,
        shape: str,
        conc: int,
        vary: bool = True,
        snap: Callable[[], Snapshot] | None = None,
    ) -> Point:
        """One point: a warm-up run, then the measured run (with metrics snapshots around it for ours)."""
        if self.args.warmup > 0:
            run_wrk(base_url, path, shape, conc, self.args.warmup, vary)
        before = snap() if snap else None
        res = run_wrk(base_url, path, shape, conc, self.args.duration, vary)
        point = to_point(name, conc, res)
        if snap:
            time.sleep(0.5)  # let in-flight batches and deadline defaults land in the metrics
            after = snap()
            point.defaults = point_defaults(before, after)
            point.mean_batch = point_mean_batch(before, after)
            # Queries answered neither by the model nor with a default: with varying inputs there should be none.
            unanswered = (after.app_num - before.app_num) - (after.model_num - before.model_num) - point.defaults
            if vary and unanswered > 0.01 * max(1, after.app_num - before.app_num):
                point.notes.append(f"{unanswered} queries answered without the model (cache hits?)")
        if point.non2xx or point.socket_errors:
            point.notes.append(f"{point.non2xx} non-2xx, {point.socket_errors} socket errors")
        self.points.append(point)
        self.say(point.line())
        if point.notes:
            self.say(f"  NOTE {name} c={conc}: {'; '.join(point.notes)}")
        return point

    # -- ours -----------------------------------------------------------------------------------------

    def start_cluster(self, models: list[tuple[Any, ...]]) -> Any:  # the ClipperConnection
        clipper_home = tempfile.mkdtemp(prefix="clipper-bench-home-")
        os.environ["CLIPPER_HOME"] = clipper_home
        from clipper_admin import ClipperConnection, LocalContainerManager
        from clipper_admin.deployers import python as python_deployer

        q, mgmt, rpc, redis_port = free_ports(4)
        cm = LocalContainerManager(
            cluster_name=CLUSTER_NAME,
            clipper_query_port=q,
            clipper_management_port=mgmt,
            clipper_rpc_port=rpc,
            redis_port=redis_port,
        )
        conn = ClipperConnection(cm)
        self.procs.set_cluster(clipper_home, CLUSTER_NAME)
        t0 = time.monotonic()
        conn.start_clipper()
        self.say(f"# cluster up in {time.monotonic() - t0:.1f} s (query 127.0.0.1:{q}, CLIPPER_HOME={clipper_home})")
        for name, func, slo, batch_size in models:
            t0 = time.monotonic()
            conn.register_application(name=name, input_type="doubles", default_output="-1.0", slo_micros=slo)
            python_deployer.deploy_python_closure(
                conn, name=name, version=1, input_type="doubles", func=func, batch_size=batch_size
            )
            conn.link_model_to_app(app_name=name, model_name=name)
            addr = conn.get_query_addr()
            wait_answering(f"http://{addr}/{name}/predict", "input", 30)
            self.say(
                f"# deployed {name} (slo {slo / 1000:g} ms, batch_size {batch_size}) in {time.monotonic() - t0:.1f} s"
            )
        return conn

    def run_ours(self) -> None:
        conn = self.start_cluster(OUR_MODELS)
        try:
            addr = conn.get_query_addr()
            base = f"http://{addr}"
            plan = [
                ("noop", "noop", True),
                ("noop-cached", "noop", False),
                ("batchable", "batchable", True),
                ("batchable-b1", "batchable-b1", True),
            ]
            for label, app, vary in plan:
                if label not in self.args.ours or (label == "noop-cached" and self.args.no_cached):
                    continue
                for c in self.args.conc:
                    self.drive(
                        label,
                        base,
                        f"/{app}/predict",
                        "input",
                        c,
                        vary,
                        snap=lambda app=app: Snapshot.take(addr, app, app),
                    )
        finally:
            self.copy_cluster_logs()
            t0 = time.monotonic()
            self.procs.stop_everything()
            self.say(f"# cluster stopped in {time.monotonic() - t0:.1f} s")

    def copy_cluster_logs(self) -> None:
        src = Path(os.environ["CLIPPER_HOME"]) / "clusters" / CLUSTER_NAME / "logs"
        if src.is_dir():
            shutil.copytree(src, self.logdir / "clipper", dirs_exist_ok=True)

    # -- baseline and peers ---------------------------------------------------------------------------

    def run_peer(self, target: Target) -> None:
        if not target.installed():
            self.peer_info[target.name] = (
                f"SKIP: not installed (bash bench/setup-peers.sh {target.venv}; "
                f"log bench/.venv-peers/{target.venv}.log)"
            )
            self.say(f"# {target.name}: {self.peer_info[target.name]}")
            return
        version = target.version()
        (port,) = free_ports(1)
        log = self.logdir / f"{target.name}.log"
        t0 = time.monotonic()
        proc = target.launch(self.procs, port, log)
        try:
            try:
                wait_answering(f"http://127.0.0.1:{port}{target.path}", target.shape, target.startup_timeout, proc)
            except RuntimeError as exc:
                tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                self.peer_info[target.name] = f"SKIP: did not start ({exc})"
                self.say(f"# {target.name} {version}: {self.peer_info[target.name]}\n{tail}")
                return
            self.peer_info[target.name] = version
            self.say(f"# {target.name} {version} up in {time.monotonic() - t0:.1f} s on 127.0.0.1:{port}")
            for c in self.args.conc:
                self.drive(target.name, f"http://127.0.0.1:{port}", target.path, target.shape, c)
        finally:
            self.procs.stop(target.name)

    # -- the whole run --------------------------------------------------------------------------------

    def run(self) -> None:
        started = dt.datetime.now(dt.timezone.utc)
        machine = machine_info()
        self.say(
            f"# clipper bench {started:%Y-%m-%d %H:%M:%S} UTC commit {machine['commit']}: {machine['nproc']} × "
            f"{machine['cpu']}, Linux {machine['kernel']}, Python {machine['python']}, "
            f"load {machine['loadavg']}"
        )
        self.say(
            f"# {self.args.duration:g} s per point after {self.args.warmup:g} s warm-up; wrk -t1 "
            f"{' '.join(wrk_cpu_prefix())}; logs in {self.logdir}"
        )
        rounds = max(1, self.args.rounds)
        for r in range(rounds):
            if rounds > 1:
                self.say(f"# round {r + 1}/{rounds}")
            if not self.args.no_ours:
                self.run_ours()
            for name in self.args.peers:
                self.run_peer(PEERS[name])
        if rounds > 1:
            self.points = median_points(self.points)
            self.say(f"# medians over {rounds} rounds")
            for p in self.points:
                self.say(p.line())
        ratios = ratio_lines(self.points, self.peer_info, self.args.peers, self.args.conc)
        for line in ratios:
            self.say(line)
        if not self.args.no_write:
            write_results(self.args, self.points, self.peer_info, started, ratios, machine)
            self.say(f"# appended to {RESULTS_MD.relative_to(ROOT)}")
        self.say(f"# total {(dt.datetime.now(dt.timezone.utc) - started).total_seconds():.0f} s")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Clipper-in-Python benchmark (see bench/README.md)")
    p.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("BENCH_DURATION", 10)),
        help="seconds per measured point (default 10, env BENCH_DURATION)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=float(os.environ.get("BENCH_WARMUP", 2)),
        help="seconds of warm-up before every point (default 2, env BENCH_WARMUP)",
    )
    p.add_argument(
        "--conc",
        default=os.environ.get("BENCH_CONC", "1,16,64"),
        help="comma-separated connection counts (default 1,16,64)",
    )
    p.add_argument(
        "--peers",
        default=os.environ.get("BENCH_PEERS", ",".join(PEERS)),
        help=f"comma-separated baseline/peers to run (default {','.join(PEERS)}); '' for none",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get("BENCH_ROUNDS", 1)),
        help="repeat the whole sequence N times and report per-point medians (default 1)",
    )
    p.add_argument("--no-ours", action="store_true", help="skip the Clipper cluster (peers only)")
    p.add_argument("--no-cached", action="store_true", help="skip the noop-cached points")
    p.add_argument(
        "--ours",
        default=",".join(OUR_TARGETS),
        help=f"comma-separated targets of ours to run (default {','.join(OUR_TARGETS)})",
    )
    p.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=float(os.environ.get("BENCH_MAX_SECONDS", 1800)),
        help="hard limit for the whole run (default 1800)",
    )
    p.add_argument(
        "--state",
        type=Path,
        default=RESULTS_DIR / ".run-state.json",
        help="state file listing the processes this run started",
    )
    p.add_argument("--cleanup", type=Path, metavar="STATE", help="kill what the run behind STATE left, then exit")
    p.add_argument("--profile", action="store_true", help="py-spy the query frontend during a noop run")
    p.add_argument("--profile-conc", type=int, default=64)
    args = p.parse_args(argv)
    args.conc = [int(c) for c in str(args.conc).split(",") if c.strip()]
    args.peers = [n.strip() for n in str(args.peers).split(",") if n.strip()]
    unknown = [n for n in args.peers if n not in PEERS]
    if unknown:
        p.error(f"unknown peers {unknown}; known: {', '.join(PEERS)}")
    args.ours = [n.strip() for n in str(args.ours).split(",") if n.strip()]
    unknown = [n for n in args.ours if n not in OUR_TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; ours are: {', '.join(OUR_TARGETS)}")
    return args


def main() -> None:
    args = parse_args()
    if args.cleanup:
        cleanup_from_state(args.cleanup)
        return
    if not shutil.which("wrk"):
        msg = "wrk is not installed (apt-get install -y wrk, or use bash bench/run.sh)"
        raise SystemExit(msg)

    bound_run(args.max_seconds)
    procs = Processes(args.state)
    try:
        if args.profile:
            profile(args, procs, lambda: Bench(args, procs).start_cluster([OUR_MODELS[0]]))
        else:
            Bench(args, procs).run()
    except KeyboardInterrupt:
        print("bench: interrupted, cleaning up", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    finally:
        signal.alarm(0)
        procs.stop_everything()
        args.state.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
