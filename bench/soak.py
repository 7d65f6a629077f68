"""Soak: a local cluster under steady load for a while, sampling the memory of every cluster process.

    .venv/bin/python bench/soak.py --minutes 10 --conc 16

Starts a local cluster on free loopback ports (CLIPPER_HOME in a temp dir), deploys ``noop`` (the benchmark's
function), drives it with wrk (every body different, so the prediction cache churns) and samples the RSS of the
query frontend, the management frontend and the replica every ``--sample`` seconds. Prints one line per sample and
a summary: RSS at the end of the first minute (after warm-up) against the end, requests, non-2xx, socket errors.
Everything it starts is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wrk import run_wrk  # noqa: E402

from clipper_core.files import read_json  # noqa: E402
from clipper_core.ports import free_ports  # noqa: E402

CLUSTER = "soak"


def noop(xs: Any) -> list[str]:
    return [str(sum(x)) for x in xs]


def rss_mb(pid: int | None) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")
    except psutil.Error:
        return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    os.environ["CLIPPER_HOME"] = tempfile.mkdtemp(prefix="clipper-soak-home-")
    from clipper_admin import ClipperConnection, LocalContainerManager
    from clipper_admin.deployers import python as python_deployer

    q, mgmt, rpc, redis_port = free_ports(4)
    cm = LocalContainerManager(
        cluster_name=CLUSTER,
        clipper_query_port=q,
        clipper_management_port=mgmt,
        clipper_rpc_port=rpc,
        redis_port=redis_port,
    )
    conn = ClipperConnection(cm)
    conn.start_clipper()
    try:
        python_deployer.create_endpoint(conn, "noop", "doubles", noop, default_output="-1", slo_micros=1_000_000)
        processes = read_json(cm.cluster_dir / "processes.json") or {}
        pids = {
            "query": processes.get("query"),
            "management": processes.get("management"),
            "replica": next(iter(r["pid"] for reps in processes.get("replicas", {}).values() for r in reps), None),
        }
        duration = args.minutes * 60
        result: dict[str, Any] = {}

        def load() -> None:
            result.update(run_wrk(f"http://{cm.get_query_addr()}", "/noop/predict", "input", args.conc, duration))

        worker = threading.Thread(target=load, daemon=True)
        t0 = time.monotonic()
        worker.start()
        samples: list[tuple[float, dict[str, float]]] = []
        while worker.is_alive():
            worker.join(args.sample)
            sample = {name: rss_mb(pid) for name, pid in pids.items()}
            samples.append((time.monotonic() - t0, sample))
            print(f"t={samples[-1][0]:6.0f}s " + " ".join(f"{k}={v:.1f}MB" for k, v in sample.items()), flush=True)
        warm = next((s for t, s in samples if t >= 60), samples[0][1])
        end = samples[-1][1]
        secs = result.get("duration_us", 1) / 1e6
        socket_errors = sum(result.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
        print(
            f"requests={result.get('requests')} rps={result.get('requests', 0) / secs:.0f} "
            f"non2xx={result.get('non2xx')} socket_errors={socket_errors}"
        )
        for name in pids:
            print(
                f"{name}: rss after 1 min {warm[name]:.1f} MB, at the end {end[name]:.1f} MB, "
                f"growth {end[name] - warm[name]:+.1f} MB"
            )
    finally:
        conn.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
