"""The query frontend's GET /metrics, read around every point of ours: mean batch size and default outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests


def read_metrics(query_addr: str) -> dict[str, dict[str, str]]:
    body = requests.get(f"http://{query_addr}/metrics", timeout=10).json()
    flat: dict[str, dict[str, str]] = {}
    for group in body.values():
        for entry in group:
            flat.update(entry)
    return flat


def _f(value: str | None) -> float:
    try:
        out = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(out) else out


@dataclass
class Snapshot:
    batches: int
    model_num: int
    app_num: int
    app_default_ratio: float

    @classmethod
    def take(cls, query_addr: str, app: str, model: str, version: str = "1") -> Snapshot:
        m = read_metrics(query_addr)
        hist = m.get(f"model:{model}:{version}:batch_size", {})
        return cls(
            batches=int(_f(hist.get("count"))),
            model_num=int(_f(m.get(f"model:{model}:{version}:num_predictions", {}).get("count"))),
            app_num=int(_f(m.get(f"app:{app}:num_predictions", {}).get("count"))),
            app_default_ratio=_f(m.get(f"app:{app}:default_prediction_ratio", {}).get("ratio")),
        )


def point_defaults(before: Snapshot, after: Snapshot) -> int:
    return max(0, round(after.app_default_ratio * after.app_num - before.app_default_ratio * before.app_num))


def point_mean_batch(before: Snapshot, after: Snapshot) -> float | None:
    """Mean size of the batches sent during one point: queries the model answered over batches it answered (the
    batch_size histogram's ``count`` is every batch ever recorded, not just those in its reservoir)."""
    d_items = after.model_num - before.model_num
    d_batches = after.batches - before.batches
    return d_items / d_batches if d_items > 0 and d_batches > 0 else None
