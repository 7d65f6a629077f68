"""Ray Serve peer: the benchmark's noop function as one Serve deployment.

A local Ray instance (num_cpus=2, no dashboard), one HTTP proxy actor and one replica actor -- the same shape
as Clipper's frontend + one replica. ``max_ongoing_requests`` is raised from Ray's default (5) so the replica
is not the admission bottleneck at 64 connections (Clipper has no such cap). No batching.

    POST /noop/predict  {"input": [10 doubles]}  ->  {"output": "<sum>"}
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray import serve  # noqa: E402
from starlette.requests import Request  # noqa: E402


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


@serve.deployment(num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class Noop:
    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        return {"output": noop([body["input"]])[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    temp_dir = tempfile.mkdtemp(prefix="bench-ray-")
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, logging_level="warning", _node_ip_address="127.0.0.1"
    )
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config={"log_level": "WARNING"})
    serve.run(Noop.bind(), name="noop", route_prefix="/noop/predict")
    print(f"ray serve listening on {args.host}:{args.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    try:
        serve.shutdown()
        ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
