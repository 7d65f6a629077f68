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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_DIR = BENCH / "peers"
PEERS_VENV = BENCH / ".venv-peers"
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_DIR = BENCH / "results"
WRK_LUA = BENCH / "wrk.lua"
CLUSTER_NAME = "bench"

# The body every target gets (first double replaced by a per-request counter unless BENCH_VARY=0).
# sum = 0.25 + 1.5 + 2.5 + ... + 9.5 = 49.75: every target's sanity check looks for it in the answer.
FIXED_SUM = "49.75"


# ---------------------------------------------------------------------------------------------- the models


def noop(xs):
    return [str(sum(x)) for x in xs]


def batchable(xs):
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


# ---------------------------------------------------------------------------------------------- processes


class Processes:
    """Servers started by this run: each in its own session, recorded in the state file, killed as a tree."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.state: dict[str, Any] = {"pids": {}, "clipper_home": None, "cluster": None}
        self._save()

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_path)

    def set_cluster(self, clipper_home: str | None, cluster: str | None) -> None:
        self.state.update(clipper_home=clipper_home, cluster=cluster)
        self._save()

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        full_env = {**os.environ, **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                    cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
        self.state["pids"][name] = proc.pid
        self._save()
        return proc

    def stop(self, name: str) -> None:
        pid = self.state["pids"].pop(name, None)
        if pid is not None:
            kill_tree(pid)
        self._save()

    def stop_everything(self) -> None:
        for name in list(self.state["pids"]):
            self.stop(name)
        stop_cluster(self.state.get("clipper_home"), self.state.get("cluster"))
        self.set_cluster(None, None)


def kill_tree(pid: int, grace: float = 10.0, timeout: float = 5.0) -> None:
    """Stop ``pid`` with its descendants and the rest of its session.

    SIGTERM the leader first and give it ``grace`` seconds to shut its own children down (Ray, MLServer, LitServe and
    BentoML all do); then SIGTERM whatever is left, and SIGKILL what survives another ``timeout`` seconds.
    """
    procs: dict[int, psutil.Process] = {}
    try:
        leader = psutil.Process(pid)
        procs[pid] = leader
        for child in leader.children(recursive=True):
            procs[child.pid] = child
    except psutil.Error:
        leader = None
    for p in psutil.process_iter():  # orphans that stayed in the session (start_new_session: sid == pid)
        try:
            if os.getsid(p.pid) == pid:
                procs[p.pid] = p
        except (OSError, psutil.Error):
            continue
    if leader is not None:
        try:
            leader.terminate()
            leader.wait(grace)
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            pass
    alive = [p for p in procs.values() if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def stop_cluster(clipper_home: str | None, cluster: str | None) -> None:
    if not clipper_home or not cluster:
        return
    os.environ["CLIPPER_HOME"] = clipper_home
    from clipper_admin import ClipperConnection, LocalContainerManager

    try:
        ClipperConnection(LocalContainerManager(cluster_name=cluster)).stop_all()
    except Exception as exc:  # noqa: BLE001 - cleanup must go on
        print(f"bench: stopping the cluster failed: {exc}", file=sys.stderr)
    shutil.rmtree(clipper_home, ignore_errors=True)


def cleanup_from_state(state_path: Path) -> None:
    """The safety net run by run.sh's trap: kill whatever a (possibly killed) run.py left behind."""
    if not state_path.exists():
        return
    try:
        state = json.loads(state_path.read_text())
    except ValueError:
        state = {}
    for name, pid in (state.get("pids") or {}).items():
        print(f"bench: cleanup: stopping {name} (pid {pid})", file=sys.stderr)
        kill_tree(int(pid))
    if state.get("cluster"):
        print(f"bench: cleanup: stopping cluster {state['cluster']}", file=sys.stderr)
        stop_cluster(state.get("clipper_home"), state.get("cluster"))
    state_path.unlink(missing_ok=True)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


# ---------------------------------------------------------------------------------------------- wrk


@dataclass
class Point:
    target: str
    conc: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    mean_batch: float | None = None
    defaults: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def answered_rps(self) -> float:
        """Requests per second answered by the model (not by a default output at the deadline)."""
        if not self.requests or self.defaults is None:
            return self.rps
        return self.rps * max(0, self.requests - self.defaults) / self.requests

    def line(self) -> str:
        mb = f"{self.mean_batch:.2f}" if self.mean_batch is not None else "-"
        de = str(self.defaults) if self.defaults is not None else "-"
        return (f"{self.target} c={self.conc} rps={self.rps:.1f} p50_ms={self.p50_ms:.2f} p99_ms={self.p99_ms:.2f} "
                f"mean_batch={mb} defaults={de}")


def wrk_cpu_prefix() -> list[str]:
    """Pin wrk to the last CPU (on a 2-core box the servers get CPU 0 and what wrk leaves of CPU 1)."""
    n = os.cpu_count() or 1
    if n >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(n - 1)]
    return []


_wrk_runs = 0


def run_wrk(base_url: str, path: str, shape: str, conc: int, duration: float, vary: bool = True) -> dict[str, Any]:
    global _wrk_runs
    _wrk_runs += 1  # every run gets its own counter range: no input is ever sent twice in one bench run
    env = {**os.environ, "BENCH_PATH": path, "BENCH_SHAPE": shape, "BENCH_VARY": "1" if vary else "0",
           "BENCH_SEED": str(_wrk_runs * 100_000_000)}
    argv = [*wrk_cpu_prefix(), "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
            "--latency", "-s", str(WRK_LUA), base_url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT "):])
    raise RuntimeError(f"wrk printed no result (rc={out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")


def to_point(target: str, conc: int, res: dict[str, Any]) -> Point:
    secs = res["duration_us"] / 1e6
    sock = res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["timeouts"]
    return Point(target, conc, res["requests"] / secs if secs else 0.0, res["p50_us"] / 1000, res["p99_us"] / 1000,
                 res["requests"], res["non2xx"], sock)


# ---------------------------------------------------------------------------------------------- metrics


def read_metrics(query_addr: str) -> dict[str, dict[str, str]]:
    body = requests.get(f"http://{query_addr}/metrics", timeout=10).json()
    flat: dict[str, dict[str, str]] = {}
    for group in body.values():
        for entry in group:
            flat.update(entry)
    return flat


def _f(value: str | None) -> float:
    try:
        out = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(out) else out


@dataclass
class Snapshot:
    batches: int
    model_num: int
    app_num: int
    app_default_ratio: float

    @classmethod
    def take(cls, query_addr: str, app: str, model: str, version: str = "1") -> Snapshot:
        m = read_metrics(query_addr)
        hist = m.get(f"model:{model}:{version}:batch_size", {})
        return cls(
            batches=int(_f(hist.get("count"))),
            model_num=int(_f(m.get(f"model:{model}:{version}:num_predictions", {}).get("count"))),
            app_num=int(_f(m.get(f"app:{app}:num_predictions", {}).get("count"))),
            app_default_ratio=_f(m.get(f"app:{app}:default_prediction_ratio", {}).get("ratio")),
        )


def point_defaults(before: Snapshot, after: Snapshot) -> int:
    return max(0, round(after.app_default_ratio * after.app_num - before.app_default_ratio * before.app_num))


def point_mean_batch(before: Snapshot, after: Snapshot) -> float | None:
    """Mean size of the batches sent during one point: queries the model answered over batches it answered (the
    batch_size histogram's ``count`` is every batch ever recorded, not just those in its reservoir)."""
    d_items = after.model_num - before.model_num
    d_batches = after.batches - before.batches
    return d_items / d_batches if d_items > 0 and d_batches > 0 else None


# ---------------------------------------------------------------------------------------------- targets


@dataclass
class Target:
    """A server to benchmark: how to start it and what to send it."""

    name: str
    path: str
    shape: str = "input"
    venv: str | None = None  # bench/.venv-peers/<venv>; None = the project's venv
    startup_timeout: float = 90.0

    def python(self) -> Path:
        return PEERS_VENV / self.venv / "bin" / "python" if self.venv else Path(sys.executable)

    def installed(self) -> bool:
        return self.venv is None or (PEERS_VENV / self.venv / ".installed").exists()

    def version(self) -> str:
        dist = {"tornado": "tornado", "litserve": "litserve", "mlserver": "mlserver", "ray": "ray",
                "bentoml": "bentoml"}[self.name]
        out = subprocess.run([str(self.python()), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                             capture_output=True, text=True, check=False)
        return out.stdout.strip() or "?"

    def launch(self, procs: Processes, port: int, log: Path) -> subprocess.Popen:
        py = self.python()
        if self.name == "tornado":
            return procs.start(self.name, [py, BENCH / "baseline_tornado.py", "--port", port], log)
        if self.name == "litserve":
            return procs.start(self.name, [py, "litserve_server.py", "--port", port], log, cwd=PEERS_DIR)
        if self.name == "ray":
            return procs.start(self.name, [py, "ray_server.py", "--port", port], log, cwd=PEERS_DIR,
                               env={"RAY_USAGE_STATS_ENABLED": "0"})
        if self.name == "mlserver":
            grpc, metrics = free_ports(2)
            env = {"MLSERVER_HOST": "127.0.0.1", "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(grpc),
                   "MLSERVER_METRICS_PORT": str(metrics)}
            return procs.start(self.name, [py.parent / "mlserver", "start", "mlserver"], log, env=env, cwd=PEERS_DIR)
        if self.name == "bentoml":
            return procs.start(self.name, [py.parent / "bentoml", "serve", "bentoml_service:Noop", "--host",
                                           "127.0.0.1", "--port", port], log, env={"BENTOML_DO_NOT_TRACK": "true"},
                               cwd=PEERS_DIR)
        raise ValueError(self.name)


PEERS = {
    "tornado": Target("tornado", "/noop/predict"),
    "litserve": Target("litserve", "/predict", venv="litserve"),
    "mlserver": Target("mlserver", "/v2/models/noop/infer", shape="v2", venv="mlserver"),
    "ray": Target("ray", "/noop/predict", venv="ray", startup_timeout=180.0),
    "bentoml": Target("bentoml", "/predict", venv="bentoml"),
}


def sample_body(shape: str) -> bytes:
    xs = [0.25, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]
    if shape == "v2":
        return json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP64", "data": xs}]}).encode()
    return json.dumps({"input": xs}).encode()


def wait_answering(url: str, shape: str, timeout: float, proc: subprocess.Popen | None = None) -> str:
    """POST the sample body until it answers 200 with the expected sum; returns the answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            r = requests.post(url, data=sample_body(shape), headers={"Content-Type": "application/json"}, timeout=5)
            if r.status_code == 200 and FIXED_SUM in r.text:
                return r.text
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise RuntimeError(f"not answering after {timeout:.0f} s ({last})")


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

    def drive(self, name: str, base_url: str, path: str, shape: str, conc: int, vary: bool = True,
              snap=None) -> Point:
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

    def start_cluster(self, models: list[tuple]):
        clipper_home = tempfile.mkdtemp(prefix="clipper-bench-home-")
        os.environ["CLIPPER_HOME"] = clipper_home
        from clipper_admin import ClipperConnection, LocalContainerManager
        from clipper_admin.deployers import python as python_deployer

        q, mgmt, rpc, redis_port = free_ports(4)
        cm = LocalContainerManager(cluster_name=CLUSTER_NAME, clipper_query_port=q, clipper_management_port=mgmt,
                                   clipper_rpc_port=rpc, redis_port=redis_port)
        conn = ClipperConnection(cm)
        self.procs.set_cluster(clipper_home, CLUSTER_NAME)
        t0 = time.monotonic()
        conn.start_clipper()
        self.say(f"# cluster up in {time.monotonic() - t0:.1f} s (query 127.0.0.1:{q}, CLIPPER_HOME={clipper_home})")
        for name, func, slo, batch_size in models:
            t0 = time.monotonic()
            conn.register_application(name=name, input_type="doubles", default_output="-1.0", slo_micros=slo)
            python_deployer.deploy_python_closure(conn, name=name, version=1, input_type="doubles", func=func,
                                                  batch_size=batch_size)
            conn.link_model_to_app(app_name=name, model_name=name)
            addr = conn.get_query_addr()
            wait_answering(f"http://{addr}/{name}/predict", "input", 30)
            self.say(f"# deployed {name} (slo {slo / 1000:g} ms, batch_size {batch_size}) "
                     f"in {time.monotonic() - t0:.1f} s")
        return conn

    def query_pid(self) -> int:
        cluster_dir = Path(os.environ["CLIPPER_HOME"]) / "clusters" / CLUSTER_NAME
        return int(json.loads((cluster_dir / "processes.json").read_text())["query"])

    def run_ours(self) -> None:
        conn = self.start_cluster(OUR_MODELS)
        try:
            addr = conn.get_query_addr()
            base = f"http://{addr}"
            plan = [("noop", "noop", True), ("noop-cached", "noop", False),
                    ("batchable", "batchable", True), ("batchable-b1", "batchable-b1", True)]
            for label, app, vary in plan:
                if label not in self.args.ours or (label == "noop-cached" and self.args.no_cached):
                    continue
                for c in self.args.conc:
                    self.drive(label, base, f"/{app}/predict", "input", c, vary,
                               snap=lambda app=app: Snapshot.take(addr, app, app))
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
            self.peer_info[target.name] = f"SKIP: not installed (bash bench/setup-peers.sh {target.venv}; " \
                                          f"log bench/.venv-peers/{target.venv}.log)"
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

    # -- report ---------------------------------------------------------------------------------------

    def get(self, target: str, conc: int) -> Point | None:
        for p in self.points:
            if p.target == target and p.conc == conc:
                return p
        return None

    def ratio_lines(self) -> list[str]:
        peers = [n for n in self.args.peers if n in self.peer_info and not self.peer_info[n].startswith("SKIP")]
        lines = []
        for ours in ("noop", "noop-cached"):
            for c in self.args.conc:
                mine = self.get(ours, c)
                if mine is None:
                    continue
                parts = []
                for peer in peers:
                    other = self.get(peer, c)
                    if other and other.rps:
                        parts.append(f"ours/{peer}={mine.rps / other.rps:.2f}")
                if parts:
                    lines.append(f"RATIO {ours} c={c} " + " ".join(parts))
        for c in self.args.conc:
            a, b = self.get("batchable", c), self.get("batchable-b1", c)
            if a and b and b.rps:
                ans = f"{a.answered_rps / b.answered_rps:.2f}x" if b.answered_rps else "inf"
                lines.append(f"batchable c={c} vs batchable-b1 c={c} = {a.rps / b.rps:.2f}x "
                             f"(answered by the model, not defaults: {ans})")
        return lines

    def machine(self) -> dict[str, str]:
        cpu = "?"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip() or "?"
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk_version = (wrk_v.stdout + wrk_v.stderr).split("[")[0].replace("wrk", "").strip() or "?"
        return {"nproc": str(os.cpu_count()), "cpu": cpu, "kernel": platform.release(),
                "python": platform.python_version(), "commit": commit, "wrk": wrk_version,
                "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3])}

    def write_results(self, started: dt.datetime, ratios: list[str], machine: dict[str, str]) -> None:
        a = self.args
        lines = [
            f"## {started:%Y-%m-%d %H:%M} UTC, commit `{machine['commit']}`",
            "",
            f"- machine: {machine['nproc']} × {machine['cpu']}, Linux {machine['kernel']}, Python {machine['python']}"
            f" (load average before the run: {machine['loadavg']})",
            f"- wrk {machine['wrk']}: `-t1`, pinned with `{' '.join(wrk_cpu_prefix()) or 'no taskset'}`; "
            f"{a.duration:g} s per point after a {a.warmup:g} s warm-up; connections {', '.join(map(str, a.conc))}"
            + (f"; medians of {a.rounds} rounds" if a.rounds > 1 else ""),
            "- targets: " + ", ".join(f"{n} {v}" for n, v in self.peer_info.items() if not v.startswith("SKIP"))
            + "".join(f"; **{n} skipped** ({v[6:]})" for n, v in self.peer_info.items() if v.startswith("SKIP")),
            "",
            "| target | c | rps | p50 ms | p99 ms | mean batch | defaults | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for p in self.points:
            mb = f"{p.mean_batch:.2f}" if p.mean_batch is not None else "–"
            de = str(p.defaults) if p.defaults is not None else "–"
            lines.append(f"| {p.target} | {p.conc} | {p.rps:.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | {mb} | {de} | "
                         f"{'; '.join(p.notes)} |")
        if ratios:
            lines += ["", "```", *ratios, "```"]
        lines.append("")
        if not RESULTS_MD.exists():
            RESULTS_MD.write_text(RESULTS_HEADER)
        with open(RESULTS_MD, "a") as f:
            f.write("\n" + "\n".join(lines))

    def run(self) -> None:
        started = dt.datetime.now(dt.timezone.utc)
        machine = self.machine()
        self.say(f"# clipper bench {started:%Y-%m-%d %H:%M:%S} UTC commit {machine['commit']}: {machine['nproc']} × "
                 f"{machine['cpu']}, Linux {machine['kernel']}, Python {machine['python']}, "
                 f"load {machine['loadavg']}")
        self.say(f"# {self.args.duration:g} s per point after {self.args.warmup:g} s warm-up; wrk -t1 "
                 f"{' '.join(wrk_cpu_prefix())}; logs in {self.logdir}")
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
        ratios = self.ratio_lines()
        for line in ratios:
            self.say(line)
        if not self.args.no_write:
            self.write_results(started, ratios, machine)
            self.say(f"# appended to {RESULTS_MD.relative_to(ROOT)}")
        self.say(f"# total {(dt.datetime.now(dt.timezone.utc) - started).total_seconds():.0f} s")


def median_points(points: list[Point]) -> list[Point]:
    """One point per (target, connections): the median of every number over the rounds."""
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.target, p.conc), []).append(p)

    def med(values: list[float | None]) -> float | None:
        vals = sorted(v for v in values if v is not None)
        if not vals:
            return None
        mid = len(vals) // 2
        return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2

    out = []
    for (target, conc), ps in groups.items():
        defaults = med([p.defaults for p in ps])
        notes = [f"median of {len(ps)}"] + sorted({n for p in ps for n in p.notes})
        out.append(Point(target, conc, med([p.rps for p in ps]), med([p.p50_ms for p in ps]),
                         med([p.p99_ms for p in ps]), round(med([p.requests for p in ps])),
                         sum(p.non2xx for p in ps), sum(p.socket_errors for p in ps), med([p.mean_batch for p in ps]),
                         None if defaults is None else round(defaults), notes))
    return out


RESULTS_HEADER = """# Benchmark results

Appended by `bash bench/run.sh` (see [README.md](README.md) for what is measured and how). One section per run,
newest last. Absolute numbers from the shared 2-core development machines are noisy; compare the ratios within
one run. `rps` counts every 2xx answer, including default outputs returned at the SLO deadline (`defaults` is
how many of the point's queries got one); `mean batch` is the mean size of the batches the frontend sent to the
model during the point (values marked ≈ in earlier sections were estimated from the histogram's reservoir).
"""


# ---------------------------------------------------------------------------------------------- profile mode


def profile(args: argparse.Namespace, procs: Processes) -> None:
    """py-spy on the query frontend (and the noop replica) during a noop run at --profile-conc connections.

    Two measured wrk runs: during the first py-spy writes the frontend's flamegraph (SVG); during the second it
    records collapsed stacks of the frontend and of the replica, summarised into -top.txt files.
    """
    py_spy = PEERS_VENV / "tools" / "bin" / "py-spy"
    if not py_spy.exists():
        raise SystemExit("py-spy is not installed: bash bench/setup-peers.sh tools")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    bench = Bench(args, procs)
    conn = bench.start_cluster([OUR_MODELS[0]])
    c, secs = args.profile_conc, args.duration
    prefix = RESULTS_DIR / f"profile-{stamp}"

    def record(pid: int, fmt: str, out: Path) -> subprocess.Popen:
        return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--duration", str(round(secs)),
                                 "--rate", "200", "--nolineno", "--nonblocking", "--format", fmt, "--output", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def measured_run(spies: list[subprocess.Popen]) -> None:
        res = run_wrk(f"http://{addr}", "/noop/predict", "input", c, secs)
        for spy in spies:
            log = spy.communicate(timeout=secs + 60)[0]
            if spy.returncode != 0:
                raise SystemExit(f"py-spy failed ({spy.returncode}): {log[-1000:]}")
        print(to_point("noop(under py-spy)", c, res).line(), flush=True)

    try:
        addr = conn.get_query_addr()
        cluster_dir = Path(os.environ["CLIPPER_HOME"]) / "clusters" / CLUSTER_NAME
        pids = json.loads((cluster_dir / "processes.json").read_text())
        frontend, replica = int(pids["query"]), int(pids["replicas"]["noop:1"][0]["pid"])
        run_wrk(f"http://{addr}", "/noop/predict", "input", c, args.warmup)
        svg = prefix.with_name(prefix.name + f"-frontend-noop-c{c}.svg")
        measured_run([record(frontend, "flamegraph", svg)])
        raws = {who: prefix.with_name(prefix.name + f"-{who}-noop-c{c}.txt") for who in ("frontend", "replica")}
        measured_run([record(frontend, "raw", raws["frontend"]), record(replica, "raw", raws["replica"])])
        for who, raw in raws.items():
            top = raw.with_name(raw.stem + "-top.txt")
            top.write_text(top_functions(raw, f"{who} (pid {frontend if who == 'frontend' else replica})"))
            print(f"\n# {top.relative_to(ROOT)} (first lines)")
            print("\n".join(top.read_text().splitlines()[:25]))
        print(f"\n# flamegraph: {svg.relative_to(ROOT)}; collapsed stacks: "
              + ", ".join(str(r.relative_to(ROOT)) for r in raws.values()))
    finally:
        procs.stop_everything()


def top_functions(collapsed: Path, title: str, n: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed ("raw") stacks."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [f for f in stack.split(";") if f]
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
        if frames:
            self_c[frames[-1]] = self_c.get(frames[-1], 0) + count
    if not total:
        return "no samples\n"

    def table(d: dict[str, int], title: str) -> list[str]:
        rows = sorted(d.items(), key=lambda kv: -kv[1])[:n]
        return [title, *(f"{100 * v / total:6.1f}%  {k}" for k, v in rows), ""]

    return "\n".join([f"{title}: {total} samples (all threads, idle excluded)", "",
                      *table(self_c, "== self (where the time is spent) =="),
                      *table(incl, "== inclusive (time under the function) ==")])


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Clipper-in-Python benchmark (see bench/README.md)")
    p.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 10)),
                   help="seconds per measured point (default 10, env BENCH_DURATION)")
    p.add_argument("--warmup", type=float, default=float(os.environ.get("BENCH_WARMUP", 2)),
                   help="seconds of warm-up before every point (default 2, env BENCH_WARMUP)")
    p.add_argument("--conc", default=os.environ.get("BENCH_CONC", "1,16,64"),
                   help="comma-separated connection counts (default 1,16,64)")
    p.add_argument("--peers", default=os.environ.get("BENCH_PEERS", ",".join(PEERS)),
                   help=f"comma-separated baseline/peers to run (default {','.join(PEERS)}); '' for none")
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 1)),
                   help="repeat the whole sequence N times and report per-point medians (default 1)")
    p.add_argument("--no-ours", action="store_true", help="skip the Clipper cluster (peers only)")
    p.add_argument("--no-cached", action="store_true", help="skip the noop-cached points")
    p.add_argument("--ours", default=",".join(OUR_TARGETS),
                   help=f"comma-separated targets of ours to run (default {','.join(OUR_TARGETS)})")
    p.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    p.add_argument("--max-seconds", type=float, default=float(os.environ.get("BENCH_MAX_SECONDS", 1800)),
                   help="hard limit for the whole run (default 1800)")
    p.add_argument("--state", type=Path, default=RESULTS_DIR / ".run-state.json",
                   help="state file listing the processes this run started")
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
        raise SystemExit("wrk is not installed (apt-get install -y wrk, or use bash bench/run.sh)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def on_alarm(_signum, _frame):
        raise TimeoutError(f"the run exceeded --max-seconds={args.max_seconds:g}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.max_seconds))
    procs = Processes(args.state)
    try:
        if args.profile:
            profile(args, procs)
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
