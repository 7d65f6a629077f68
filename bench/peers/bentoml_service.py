"""BentoML peer: the benchmark's noop function as a BentoML service with one worker.

Started with ``bentoml serve bentoml_service:Noop --host 127.0.0.1 --port P`` from bench/peers (bench/run.py sets
BENTOML_DO_NOT_TRACK). BentoML runs the API in its HTTP worker process (one worker here), so this is a
single-serving-process config (plus BentoML's supervisor). No batching.

    POST /predict  {"input": [10 doubles]}  ->  {"output": "<sum>"}
"""

from __future__ import annotations

import bentoml


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Noop:
    @bentoml.api
    async def predict(self, input: list[float]) -> dict:  # noqa: A002 - the request field is called "input"
        return {"output": noop([input])[0]}
