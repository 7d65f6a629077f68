"""The query frontend's metrics registry, rendered in the original's JSON format (reference §1.5, §7.1).

Updates on the request path are plain attribute arithmetic; everything else (percentiles, rates) is computed when
``/metrics`` is read or on a 5 s tick.
"""

from __future__ import annotations

import math
import time
from typing import Any

_EWMA_INTERVAL = 5.0
_ALPHA = {
    "rate_1min": 1 - math.exp(-_EWMA_INTERVAL / 60.0),
    "rate_5min": 1 - math.exp(-_EWMA_INTERVAL / 300.0),
    "rate_15min": 1 - math.exp(-_EWMA_INTERVAL / 900.0),
}


def _num(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(round(value, 6))
    return str(value)


class Counter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def render(self) -> dict[str, str]:
        return {"count": str(self.count)}


class RatioCounter:
    __slots__ = ("numerator", "denominator")

    def __init__(self) -> None:
        self.numerator = 0
        self.denominator = 0

    @property
    def ratio(self) -> float:
        return self.numerator / self.denominator if self.denominator else math.nan

    def render(self) -> dict[str, str]:
        return {"ratio": _num(self.ratio)}


class Meter:
    __slots__ = ("count", "start", "_last_count", "rates")

    def __init__(self) -> None:
        self.count = 0
        self.start = time.monotonic()
        self._last_count = 0
        self.rates = {"rate_1min": 0.0, "rate_5min": 0.0, "rate_15min": 0.0}

    def tick(self) -> None:
        instant = (self.count - self._last_count) / _EWMA_INTERVAL
        self._last_count = self.count
        for key, alpha in _ALPHA.items():
            self.rates[key] += alpha * (instant - self.rates[key])

    def render(self) -> dict[str, str]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        out = {"unit": "events per second", "rate": _num(self.count / elapsed)}
        out.update({k: _num(v) for k, v in self.rates.items()})
        return out


class Histogram:
    """A sliding reservoir of the last ``size`` samples (the original used reservoirs of 4096)."""

    __slots__ = ("unit", "size", "samples", "index", "total")

    def __init__(self, unit: str = "microseconds", size: int = 4096) -> None:
        self.unit = unit
        self.size = size
        self.samples: list[float] = []
        self.index = 0
        self.total = 0

    def insert(self, value: float) -> None:
        if len(self.samples) < self.size:
            self.samples.append(value)
        else:
            self.samples[self.index] = value
            self.index = (self.index + 1) % self.size
        self.total += 1

    def snapshot(self) -> dict[str, float]:
        data = sorted(self.samples)
        n = len(data)
        if not n:
            return {"size": 0, "min": 0, "max": 0, "mean": 0, "std_dev": 0, "p50": 0, "p95": 0, "p99": 0}
        mean = sum(data) / n
        var = sum((x - mean) ** 2 for x in data) / n

        def pct(p: float) -> float:
            return data[min(n - 1, max(0, math.ceil(p * n) - 1))]

        return {
            "size": n,
            "min": data[0],
            "max": data[-1],
            "mean": mean,
            "std_dev": math.sqrt(var),
            "p50": pct(0.50),
            "p95": pct(0.95),
            "p99": pct(0.99),
        }

    def render(self) -> dict[str, str]:
        """The original's fields (over the reservoir) plus ``count``, every sample ever inserted."""
        snap = self.snapshot()
        return {"unit": self.unit, **{k: _num(v) for k, v in snap.items()}, "count": str(self.total)}


class MetricsRegistry:
    """Named metrics grouped by type, in the order the original prints them."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter] = {}
        self.ratio_counters: dict[str, RatioCounter] = {}
        self.meters: dict[str, Meter] = {}
        self.histograms: dict[str, Histogram] = {}

    def counter(self, name: str) -> Counter:
        return self.counters.setdefault(name, Counter())

    def ratio_counter(self, name: str) -> RatioCounter:
        return self.ratio_counters.setdefault(name, RatioCounter())

    def meter(self, name: str) -> Meter:
        return self.meters.setdefault(name, Meter())

    def histogram(self, name: str, unit: str = "microseconds", size: int = 4096) -> Histogram:
        hist = self.histograms.get(name)
        if hist is None:
            hist = self.histograms[name] = Histogram(unit, size)
        return hist

    def remove_prefix(self, prefix: str) -> None:
        for group in (self.counters, self.ratio_counters, self.meters, self.histograms):
            for name in [n for n in group if n.startswith(prefix)]:
                del group[name]

    def tick(self) -> None:
        for meter in self.meters.values():
            meter.tick()

    def render(self) -> dict[str, Any]:
        return {
            "counters": [{n: m.render()} for n, m in self.counters.items()],
            "ratio_counters": [{n: m.render()} for n, m in self.ratio_counters.items()],
            "meters": [{n: m.render()} for n, m in self.meters.items()],
            "histograms": [{n: m.render()} for n, m in self.histograms.items()],
        }
