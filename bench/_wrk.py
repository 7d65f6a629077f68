"""Running wrk (bench/wrk.lua) against a target and turning its result into a ``Point``."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from _paths import WRK_LUA


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
        return (
            f"{self.target} c={self.conc} rps={self.rps:.1f} p50_ms={self.p50_ms:.2f} p99_ms={self.p99_ms:.2f} "
            f"mean_batch={mb} defaults={de}"
        )


def wrk_cpu_prefix() -> list[str]:
    """Pin wrk to the last CPU (on a 2-core box the servers get CPU 0 and what wrk leaves of CPU 1)."""
    n = os.cpu_count() or 1
    if n >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(n - 1)]
    return []


def _die_with_parent() -> None:
    """In the child before exec: have the kernel send SIGTERM when the bench process dies (even by SIGKILL), so a
    wrk run never outlives the run that started it. taskset execs wrk in the same process, which keeps this."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: wrk still ends by itself after its duration


_wrk_runs = 0


def run_wrk(base_url: str, path: str, shape: str, conc: int, duration: float, vary: bool = True) -> dict[str, Any]:
    global _wrk_runs
    _wrk_runs += 1  # every run gets its own counter range: no input is ever sent twice in one bench run
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_SHAPE": shape,
        "BENCH_VARY": "1" if vary else "0",
        "BENCH_SEED": str(_wrk_runs * 100_000_000),
    }
    argv = [
        *wrk_cpu_prefix(),
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(WRK_LUA),
        base_url,
    ]
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=duration + 60, check=False, preexec_fn=_die_with_parent
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT ") :])
    msg = f"wrk printed no result (rc={out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}"
    raise RuntimeError(msg)


def to_point(target: str, conc: int, res: dict[str, Any]) -> Point:
    secs = res["duration_us"] / 1e6
    sock = res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["timeouts"]
    return Point(
        target,
        conc,
        res["requests"] / secs if secs else 0.0,
        res["p50_us"] / 1000,
        res["p99_us"] / 1000,
        res["requests"],
        res["non2xx"],
        sock,
    )
