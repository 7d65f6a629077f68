"""What gets benchmarked besides our cluster: the Tornado baseline and the peers, how to start each and how to tell
that a target answers (the sample body and its expected sum)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from _paths import BENCH, PEERS_DIR, PEERS_VENV
from _procs import Processes

from clipper_core.ports import free_ports

# The body every target gets (first double replaced by a per-request counter unless BENCH_VARY=0).
# sum = 0.25 + 1.5 + 2.5 + ... + 9.5 = 49.75: every target's sanity check looks for it in the answer.
FIXED_SUM = "49.75"


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
        dist = {
            "tornado": "tornado",
            "litserve": "litserve",
            "mlserver": "mlserver",
            "ray": "ray",
            "bentoml": "bentoml",
        }[self.name]
        out = subprocess.run(
            [str(self.python()), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or "?"

    def launch(self, procs: Processes, port: int, log: Path) -> subprocess.Popen:
        py = self.python()
        if self.name == "tornado":
            return procs.start(self.name, [py, BENCH / "baseline_tornado.py", "--port", port], log)
        if self.name == "litserve":
            return procs.start(self.name, [py, "litserve_server.py", "--port", port], log, cwd=PEERS_DIR)
        if self.name == "ray":
            return procs.start(
                self.name,
                [py, "ray_server.py", "--port", port],
                log,
                cwd=PEERS_DIR,
                env={"RAY_USAGE_STATS_ENABLED": "0"},
            )
        if self.name == "mlserver":
            grpc, metrics = free_ports(2)
            env = {
                "MLSERVER_HOST": "127.0.0.1",
                "MLSERVER_HTTP_PORT": str(port),
                "MLSERVER_GRPC_PORT": str(grpc),
                "MLSERVER_METRICS_PORT": str(metrics),
            }
            return procs.start(self.name, [py.parent / "mlserver", "start", "mlserver"], log, env=env, cwd=PEERS_DIR)
        if self.name == "bentoml":
            return procs.start(
                self.name,
                [py.parent / "bentoml", "serve", "bentoml_service:Noop", "--host", "127.0.0.1", "--port", port],
                log,
                env={"BENTOML_DO_NOT_TRACK": "true"},
                cwd=PEERS_DIR,
            )
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
            msg = f"exited with code {proc.returncode}"
            raise RuntimeError(msg)
        try:
            r = requests.post(url, data=sample_body(shape), headers={"Content-Type": "application/json"}, timeout=5)
            if r.status_code == 200 and FIXED_SUM in r.text:
                return r.text
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    msg = f"not answering after {timeout:.0f} s ({last})"
    raise RuntimeError(msg)
