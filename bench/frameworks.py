"""Framework models under load (see bench/README.md, "Framework models"): adaptive batching against batch_size=1.

One run:
  1. starts a local cluster and deploys a 2-layer torch MLP (10 -> 64 -> 1, CPU) with ``deploy_pytorch_model``
     twice, as ``torch-mlp`` (adaptive batching) and ``torch-mlp-b1`` (``batch_size=1``), drives both with wrk;
  2. stops them, trains a Spark ``ml`` LogisticRegression on 10 features in this process, deploys it with
     ``deploy_pyspark_model`` as ``spark-lr`` and ``spark-lr-b1`` and drives both;
  3. stops the cluster, then starts the same MLP under LitServe with its own batching (``litserve-torch``,
     ``max_batch_size=64``, ``batch_timeout=1 ms``) and without (``litserve-torch-b1``), one at a time;
  4. repeats 1-3 ``--rounds`` times, prints ``MODEL c=N ...`` lines (the medians over the rounds) and the
     adaptive/b1 ratios, and appends a section to bench/RESULTS.md.

The points, the wrk runs, the metrics and the process clean-up are run.py's (``Bench``, ``Processes``); the predict
functions live here so the deployers pickle them by value, as functions of ``__main__``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from _metrics import Snapshot
from _paths import CLUSTER_NAME, PEERS_DIR, PEERS_VENV, RESULTS_DIR, RESULTS_MD, ROOT
from _procs import Processes, bound_run, cleanup_from_state
from _report import find_point, machine_info, median_points, write_results
from _targets import sample_body
from _wrk import Point, wrk_cpu_prefix
from run import Bench

from clipper_core.ports import free_ports

TORCH_SLO = 100_000  # µs, as the batchable closure
SPARK_SLO = 2_000_000  # µs: one Spark transform costs tens of ms, so a queue of 64 single queries takes seconds
SPARK_START_TIMEOUT = 240.0  # a replica's JVM start, slower on a busy machine
#: The replicas' (and this process's) Spark drivers start faster with these (as in the deployer's tests).
FAST_START = json.dumps({"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"})
TARGETS = ("torch", "spark", "litserve")
# (adaptive target, batch_size=1 target): the pairs whose rps ratio is the batching gain
PAIRS = [("torch-mlp", "torch-mlp-b1"), ("spark-lr", "spark-lr-b1"), ("litserve-torch", "litserve-torch-b1")]

# ---------------------------------------------------------------------------------------------- the models


def make_mlp(torch: Any, n_in: int = 10, hidden: int = 64, n_out: int = 1, seed: int = 0) -> Any:
    """The 2-layer MLP (fixed random weights, eval mode); bench/peers/litserve_torch_server.py builds the same."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)).eval()


def mlp_rows(model: Any, inputs: Any) -> list[str]:
    import numpy as np
    import torch

    x = torch.from_numpy(np.stack(inputs).astype(np.float32))
    return [str(v) for v in model(x)[:, 0].tolist()]


def spark_rows(spark: Any, model: Any, inputs: Any) -> list[str]:
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame([(Vectors.dense([float(v) for v in x]),) for x in inputs], ["features"])
    return [str(r.probability[1]) for r in model.transform(df).select("probability").collect()]


def train_spark_lr() -> tuple[Any, Any]:
    """A SparkSession in this process (the deployer saves the model with it) and an LR fitted on 10 features."""
    import random

    from clipper_deployers._spark import session_config
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in session_config().items():
        builder = builder.config(key, value)
    spark = builder.appName("clipper-bench-train").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    rng = random.Random(0)
    rows = []
    for _ in range(200):
        x = [rng.uniform(0, 10) for _ in range(10)]
        rows.append((Vectors.dense(x), 1.0 if sum(x) > 50 else 0.0))
    model = LogisticRegression(maxIter=10, regParam=0.01).fit(spark.createDataFrame(rows, ["features", "label"]))
    return spark, model


# ---------------------------------------------------------------------------------------------- the run


def wait_model(url: str, timeout: float, proc: subprocess.Popen | None = None) -> str:
    """POST the sample body until it answers 200 with a non-default output; returns the output."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            msg = f"exited with code {proc.returncode}"
            raise RuntimeError(msg)
        try:
            r = requests.post(url, data=sample_body("input"), headers={"Content-Type": "application/json"}, timeout=10)
            body = r.json() if r.status_code == 200 else {}
            if "output" in body and body.get("default", False) is False:
                return str(body["output"])
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except (requests.RequestException, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    msg = f"not answering after {timeout:.0f} s ({last})"
    raise RuntimeError(msg)


class FrameworkBench(Bench):
    def start_empty_cluster(self) -> Any:
        clipper_home = tempfile.mkdtemp(prefix="clipper-bench-home-")
        os.environ["CLIPPER_HOME"] = clipper_home
        from clipper_admin import ClipperConnection, LocalContainerManager

        q, mgmt, rpc, redis_port = free_ports(4)
        cm = LocalContainerManager(
            cluster_name=CLUSTER_NAME,
            clipper_query_port=q,
            clipper_management_port=mgmt,
            clipper_rpc_port=rpc,
            redis_port=redis_port,
        )
        cm.deploy_timeout = SPARK_START_TIMEOUT
        conn = ClipperConnection(cm)
        conn.deploy_timeout_s = SPARK_START_TIMEOUT
        self.procs.set_cluster(clipper_home, CLUSTER_NAME)
        conn.start_clipper()
        self.say(f"# cluster up (query 127.0.0.1:{q}, CLIPPER_HOME={clipper_home})")
        return conn

    def deployed(self, conn: Any, name: str, slo: int, batch_size: int, deploy: Any) -> None:
        t0 = time.monotonic()
        conn.register_application(name=name, input_type="doubles", default_output="-1.0", slo_micros=slo)
        deploy(name, batch_size)
        conn.link_model_to_app(app_name=name, model_name=name)
        out = wait_model(f"http://{conn.get_query_addr()}/{name}/predict", SPARK_START_TIMEOUT)
        self.say(
            f"# deployed {name} (slo {slo / 1000:g} ms, batch_size {batch_size}) in {time.monotonic() - t0:.1f} s;"
            f" sample output {out}"
        )

    def measure(self, conn: Any, names: list[str]) -> None:
        addr = conn.get_query_addr()
        for name in names:
            for c in self.args.conc:
                self.drive(
                    name,
                    f"http://{addr}",
                    f"/{name}/predict",
                    "input",
                    c,
                    snap=lambda name=name: Snapshot.take(addr, name, name),
                )

    def run_torch(self, conn: Any) -> None:
        import torch

        from clipper_admin.deployers import pytorch as pytorch_deployer

        self.peer_info["torch"] = torch.__version__
        model = make_mlp(torch)
        example = torch.zeros(4, 10)

        def deploy(name: str, batch_size: int) -> None:
            pytorch_deployer.deploy_pytorch_model(
                conn, name, 1, "doubles", mlp_rows, model, batch_size=batch_size, example_inputs=example
            )

        names = [n for n in ("torch-mlp", "torch-mlp-b1") if n in self.args.models]
        for name in names:
            self.deployed(conn, name, TORCH_SLO, 1 if name.endswith("-b1") else -1, deploy)
        self.measure(conn, names)
        conn.stop_models(names)

    def run_spark(self, conn: Any) -> None:
        import pyspark

        from clipper_admin.deployers import pyspark as pyspark_deployer

        self.peer_info["pyspark"] = pyspark.__version__
        t0 = time.monotonic()
        spark, model = train_spark_lr()
        self.say(f"# Spark LR trained in {time.monotonic() - t0:.1f} s")
        names = [n for n in ("spark-lr", "spark-lr-b1") if n in self.args.models]
        try:

            def deploy(name: str, batch_size: int) -> None:
                pyspark_deployer.deploy_pyspark_model(
                    conn, name, 1, "doubles", spark_rows, model, spark.sparkContext, batch_size=batch_size
                )

            for name in names:
                self.deployed(conn, name, SPARK_SLO, 1 if name.endswith("-b1") else -1, deploy)
        finally:
            spark.stop()  # this process's JVM stays idle during the points
        self.measure(conn, names)
        conn.stop_models(names)

    def run_cluster(self) -> None:
        conn = self.start_empty_cluster()
        try:
            if "torch" in self.args.targets:
                self.run_torch(conn)
            if "spark" in self.args.targets:
                self.run_spark(conn)
        finally:
            self.copy_cluster_logs()
            self.procs.stop_everything()
            self.say("# cluster stopped")

    def run_litserve(self) -> None:
        py = PEERS_VENV / "litserve-torch" / "bin" / "python"
        if not (PEERS_VENV / "litserve-torch" / ".installed").exists():
            self.peer_info["litserve"] = "SKIP: not installed (bash bench/setup-peers.sh litserve-torch)"
            self.say(f"# litserve-torch: {self.peer_info['litserve']}")
            return
        out = subprocess.run(
            [str(py), "-c", "import litserve; print(litserve.__version__)"], capture_output=True, text=True, check=False
        )
        self.peer_info["litserve"] = out.stdout.strip() or "?"
        for name, max_batch in (("litserve-torch", 64), ("litserve-torch-b1", 1)):
            if name not in self.args.models:
                continue
            (port,) = free_ports(1)
            argv = [
                py,
                "litserve_torch_server.py",
                "--port",
                port,
                "--max-batch-size",
                max_batch,
                "--batch-timeout",
                0.001,
            ]
            proc = self.procs.start(name, argv, self.logdir / f"{name}.log", cwd=PEERS_DIR)
            try:
                sample = wait_model(f"http://127.0.0.1:{port}/predict", 90, proc)
                self.say(
                    f"# {name} (litserve {self.peer_info['litserve']}, max_batch_size {max_batch}) up; "
                    f"sample output {sample}"
                )
                for c in self.args.conc:
                    self.drive(name, f"http://127.0.0.1:{port}", "/predict", "input", c)
            finally:
                self.procs.stop(name)

    def run(self) -> None:
        started = dt.datetime.now(dt.timezone.utc)
        machine = machine_info()
        self.say(
            f"# clipper frameworks bench {started:%Y-%m-%d %H:%M:%S} UTC commit {machine['commit']}: "
            f"{machine['nproc']} × {machine['cpu']}, load {machine['loadavg']}; {self.args.duration:g} s per point "
            f"after {self.args.warmup:g} s warm-up; wrk -t1 {' '.join(wrk_cpu_prefix())}"
        )
        rounds = max(1, self.args.rounds)
        for r in range(rounds):
            if rounds > 1:
                self.say(f"# round {r + 1}/{rounds}")
            if {"torch", "spark"} & set(self.args.targets):
                self.run_cluster()
            if "litserve" in self.args.targets:
                self.run_litserve()
        if rounds > 1:
            self.points = median_points(self.points)
            self.say(f"# medians over {rounds} rounds")
            for p in self.points:
                self.say(p.line())
        ratios = pair_ratios(self.points, self.args.conc)
        for line in ratios:
            self.say(line)
        if not self.args.no_write:
            write_results(self.args, self.points, self.peer_info, started, ratios, machine, title="framework models")
            self.say(f"# appended to {RESULTS_MD.relative_to(ROOT)}")
        self.say(f"# total {(dt.datetime.now(dt.timezone.utc) - started).total_seconds():.0f} s")


def pair_ratios(points: list[Point], conc: list[int]) -> list[str]:
    """The adaptive/b1 rps ratio per pair and connection count, and ours/LitServe for the batched MLP."""
    lines = []
    for a_name, b_name in PAIRS:
        for c in conc:
            a, b = find_point(points, a_name, c), find_point(points, b_name, c)
            if a and b and b.rps:
                # defaults can exceed a point's requests (the warm-up's queries still queued default during it)
                ans = f"{a.answered_rps / b.answered_rps:.2f}x" if b.answered_rps else f"inf, {b_name} all defaults"
                lines.append(f"{a_name} c={c} vs {b_name} c={c} = {a.rps / b.rps:.2f}x (answered by the model: {ans})")
    for c in conc:
        a, b = find_point(points, "torch-mlp", c), find_point(points, "litserve-torch", c)
        if a and b and b.rps:
            lines.append(f"RATIO torch-mlp c={c} ours/litserve-torch={a.rps / b.rps:.2f}")
    return lines


# ---------------------------------------------------------------------------------------------- main

MODELS = ("torch-mlp", "torch-mlp-b1", "spark-lr", "spark-lr-b1", "litserve-torch", "litserve-torch-b1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Framework models under load (see bench/README.md)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured point (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before every point (default 2)")
    p.add_argument("--conc", default="1,16,64", help="comma-separated connection counts (default 1,16,64)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"any of {','.join(TARGETS)} (default all)")
    p.add_argument("--models", default=",".join(MODELS), help="only these targets (default all)")
    p.add_argument(
        "--rounds", type=int, default=1, help="run everything this many times and report the medians (default 1)"
    )
    p.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    p.add_argument(
        "--max-seconds", type=float, default=1200.0, help="hard limit for the whole run (default 1200 per round)"
    )
    p.add_argument("--state", type=Path, default=RESULTS_DIR / ".frameworks-state.json")
    p.add_argument("--cleanup", type=Path, metavar="STATE", help="kill what the run behind STATE left, then exit")
    args = p.parse_args(argv)
    args.conc = [int(c) for c in str(args.conc).split(",") if c.strip()]
    args.targets = [t.strip() for t in str(args.targets).split(",") if t.strip()]
    args.models = [m.strip() for m in str(args.models).split(",") if m.strip()]
    bad = [t for t in args.targets if t not in TARGETS] + [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"unknown {bad}; targets: {', '.join(TARGETS)}; models: {', '.join(MODELS)}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    args.max_seconds *= args.rounds
    return args


def main() -> None:
    args = parse_args()
    if args.cleanup:
        cleanup_from_state(args.cleanup)
        return
    if not shutil.which("wrk"):
        msg = "wrk is not installed (apt-get install -y wrk)"
        raise SystemExit(msg)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("CLIPPER_SPARK_CONF", FAST_START)  # read by this process's driver and the replicas'

    bound_run(args.max_seconds)
    procs = Processes(args.state)
    try:
        FrameworkBench(args, procs).run()
    except KeyboardInterrupt:
        print("bench: interrupted, cleaning up", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    finally:
        signal.alarm(0)
        procs.stop_everything()
        args.state.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
