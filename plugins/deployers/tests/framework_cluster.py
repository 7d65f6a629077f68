"""Helpers of the framework deployer tests: a real local cluster, queries, the batch-size metric, a 2-layer MLP.

A framework that is not installed skips its tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_core.files import read_json
from clipper_core.ports import free_ports
from clipper_core.testing import pid_alive, recorded_pids, wait_until


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; skip without it (fail under ``CI=true``, where every test must run)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} is not installed (pip install 'clipper-deployers[{extra}]'): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)


@contextmanager
def local_cluster(home: Path, name: str) -> Iterator[ClipperConnection]:
    """A started local cluster in ``home`` (CLIPPER_HOME) on free ports; stopped, with all its processes, after."""
    names = ("clipper_query_port", "clipper_management_port", "clipper_rpc_port", "redis_port")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_HOME", str(home))
        cm = LocalContainerManager(cluster_name=name, **dict(zip(names, free_ports(4), strict=True)))
        conn = ClipperConnection(cm)
        conn.start_clipper()
        pids = recorded_pids(read_json(Path(cm.cluster_dir) / "processes.json"))
        try:
            yield conn
        finally:
            conn.stop_all()
            wait_until(lambda: not any(pid_alive(p) for p in pids), 30, "cluster processes to exit")


def predict(conn: ClipperConnection, app: str, x: Any) -> dict[str, Any]:
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input": x}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def predict_concurrently(conn: ClipperConnection, app: str, xs: list[Any], clients: int = 16) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda x: predict(conn, app, x), xs))


def mean_batch_size(conn: ClipperConnection, model: str, version: str = "1") -> float:
    """The mean of the query frontend's ``model:<name>:<version>:batch_size`` histogram."""
    metrics = requests.get(f"http://{conn.get_query_addr()}/metrics", timeout=10).json()
    key = f"model:{model}:{version}:batch_size"
    for entry in metrics["histograms"]:
        if key in entry:
            return float(entry[key]["mean"])
    msg = f"no {key} histogram in {sorted(k for e in metrics['histograms'] for k in e)}"
    raise AssertionError(msg)


def model_metadata(conn: ClipperConnection, model: str, version: str = "1") -> dict[str, Any]:
    """``metadata.json`` of a deployed model, as the local cluster stores it."""
    data = read_json(conn.cm.paths.model_dir(model, version) / "metadata.json")
    assert isinstance(data, dict)
    return data


def output_row(response: dict[str, Any]) -> list[float]:
    """The list of floats a test model returns as a JSON string (the frontend may have parsed it already)."""
    import json

    assert response["default"] is False, response
    out = response["output"]
    return [float(v) for v in (json.loads(out) if isinstance(out, str) else out)]


def make_mlp(torch: ModuleType, n_in: int = 4, hidden: int = 16, n_out: int = 3, seed: int = 0) -> Any:
    """A 2-layer MLP with fixed random weights, in eval mode."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)).eval()
