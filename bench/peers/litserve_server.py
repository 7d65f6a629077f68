"""LitServe peer: the benchmark's noop function as a LitAPI.

One API server process (uvicorn) + one inference worker process, connected by ZeroMQ (``fast_queue=True``, the
setting LitServe recommends above ~100 RPS) -- the same shape as Clipper's frontend + one replica. No batching.

    POST /predict  {"input": [10 doubles]}  ->  {"output": "<sum>"}
"""

from __future__ import annotations

import argparse

import litserve as ls


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


class NoopAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: dict[str, list[float]]) -> list[float]:
        return request["input"]

    def predict(self, x: list[float]) -> str:
        return noop([x])[0]

    def encode_response(self, output: str) -> dict[str, str]:
        return {"output": output}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ls.LitServer(NoopAPI(), accelerator="cpu", devices=1, workers_per_device=1, fast_queue=True)
    server.run(host=args.host, port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
