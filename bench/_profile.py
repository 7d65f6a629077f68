"""``run.py --profile`` (bench/profile.sh): py-spy on the query frontend and the noop replica during a noop run."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paths import CLUSTER_NAME, PEERS_VENV, RESULTS_DIR, ROOT
from _procs import Processes
from _wrk import run_wrk, to_point


def profile(args: argparse.Namespace, procs: Processes, start_cluster: Callable[[], Any]) -> None:
    """py-spy on the query frontend (and the noop replica) during a noop run at --profile-conc connections.

    Two measured wrk runs: during the first py-spy writes the frontend's flamegraph (SVG); during the second it
    records collapsed stacks of the frontend and of the replica, summarised into -top.txt files.
    ``start_cluster`` starts a cluster with only ``noop`` deployed and returns its ClipperConnection (run.py passes
    ``Bench.start_cluster``, which lives next to the model functions it deploys).
    """
    py_spy = PEERS_VENV / "tools" / "bin" / "py-spy"
    if not py_spy.exists():
        msg = "py-spy is not installed: bash bench/setup-peers.sh tools"
        raise SystemExit(msg)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    conn = start_cluster()
    c, secs = args.profile_conc, args.duration
    prefix = RESULTS_DIR / f"profile-{stamp}"

    def record(pid: int, fmt: str, out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(round(secs)),
                "--rate",
                "200",
                "--nolineno",
                "--nonblocking",
                "--format",
                fmt,
                "--output",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def measured_run(spies: list[subprocess.Popen]) -> None:
        res = run_wrk(f"http://{addr}", "/noop/predict", "input", c, secs)
        for spy in spies:
            log = spy.communicate(timeout=secs + 60)[0]
            if spy.returncode != 0:
                msg = f"py-spy failed ({spy.returncode}): {log[-1000:]}"
                raise SystemExit(msg)
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
        print(
            f"\n# flamegraph: {svg.relative_to(ROOT)}; collapsed stacks: "
            + ", ".join(str(r.relative_to(ROOT)) for r in raws.values())
        )
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

    return "\n".join(
        [
            f"{title}: {total} samples (all threads, idle excluded)",
            "",
            *table(self_c, "== self (where the time is spent) =="),
            *table(incl, "== inclusive (time under the function) =="),
        ]
    )
