"""LitServe peer for bench/frameworks.py: the same 2-layer torch MLP as ``torch-mlp``, with LitServe's own batching.

One API server process (uvicorn) + one inference worker process (``fast_queue=True``), as in litserve_server.py.
``--max-batch-size N --batch-timeout S`` turn on LitServe's dynamic batching (N=1: no batching). The weights are
the ones bench/frameworks.py deploys (``torch.manual_seed(0)``, same torch version), so both answer the same.

    POST /predict  {"input": [10 doubles]}  ->  {"output": "<the MLP's output>"}
"""

from __future__ import annotations

import argparse
from typing import Any

import litserve as ls
import torch


def make_mlp(n_in: int = 10, hidden: int = 64, n_out: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)).eval()


class MLPAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = make_mlp()

    def decode_request(self, request: dict[str, list[float]]) -> list[float]:
        return request["input"]

    def batch(self, inputs: list[list[float]]) -> torch.Tensor:
        return torch.tensor(inputs, dtype=torch.float32)

    def predict(self, x: Any) -> Any:
        with torch.inference_mode():
            if isinstance(x, torch.Tensor):  # a batch
                return self.model(x)[:, 0].tolist()
            return float(self.model(torch.tensor([x], dtype=torch.float32))[0, 0])

    def unbatch(self, output: list[float]) -> list[float]:
        return output

    def encode_response(self, output: float) -> dict[str, str]:
        return {"output": str(output)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.001)
    args = parser.parse_args()
    timeout = args.batch_timeout if args.max_batch_size > 1 else 0.0
    api = MLPAPI(max_batch_size=args.max_batch_size, batch_timeout=timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, fast_queue=True)
    server.run(host=args.host, port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
