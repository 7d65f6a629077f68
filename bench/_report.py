"""What a run reports: the machine, the ``RATIO`` lines, per-point medians over rounds and the RESULTS.md section."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

from _paths import RESULTS_MD, ROOT
from _wrk import Point, wrk_cpu_prefix

RESULTS_HEADER = """# Benchmark results

Appended by `bash bench/run.sh` (see [README.md](README.md) for what is measured and how). One section per run,
newest last. Absolute numbers from the shared 2-core development machines are noisy; compare the ratios within
one run. `rps` counts every 2xx answer, including default outputs returned at the SLO deadline (`defaults` is
how many of the point's queries got one); `mean batch` is the mean size of the batches the frontend sent to the
model during the point (values marked ≈ in earlier sections were estimated from the histogram's reservoir).
"""


def find_point(points: list[Point], target: str, conc: int) -> Point | None:
    for p in points:
        if p.target == target and p.conc == conc:
            return p
    return None


def ratio_lines(points: list[Point], peer_info: dict[str, str], peer_names: list[str], conc: list[int]) -> list[str]:
    """``RATIO`` lines (our rps over each peer's that ran) and the adaptive-batching gain, per connection count."""
    peers = [n for n in peer_names if n in peer_info and not peer_info[n].startswith("SKIP")]
    lines = []
    for ours in ("noop", "noop-cached"):
        for c in conc:
            mine = find_point(points, ours, c)
            if mine is None:
                continue
            parts = []
            for peer in peers:
                other = find_point(points, peer, c)
                if other and other.rps:
                    parts.append(f"ours/{peer}={mine.rps / other.rps:.2f}")
            if parts:
                lines.append(f"RATIO {ours} c={c} " + " ".join(parts))
    for c in conc:
        a, b = find_point(points, "batchable", c), find_point(points, "batchable-b1", c)
        if a and b and b.rps:
            ans = f"{a.answered_rps / b.answered_rps:.2f}x" if b.answered_rps else "inf"
            lines.append(
                f"batchable c={c} vs batchable-b1 c={c} = {a.rps / b.rps:.2f}x "
                f"(answered by the model, not defaults: {ans})"
            )
    return lines


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = (
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "?"
    )
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk_v.stdout + wrk_v.stderr).split("[")[0].replace("wrk", "").strip() or "?"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
        "wrk": wrk_version,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def write_results(
    args: argparse.Namespace,
    points: list[Point],
    peer_info: dict[str, str],
    started: dt.datetime,
    ratios: list[str],
    machine: dict[str, str],
    title: str = "",
) -> None:
    """Append the run's section (machine, settings, one table row per point, the ratios) to bench/RESULTS.md."""
    a = args
    lines = [
        f"## {started:%Y-%m-%d %H:%M} UTC, commit `{machine['commit']}`" + (f", {title}" if title else ""),
        "",
        f"- machine: {machine['nproc']} × {machine['cpu']}, Linux {machine['kernel']}, Python {machine['python']}"
        f" (load average before the run: {machine['loadavg']})",
        f"- wrk {machine['wrk']}: `-t1`, pinned with `{' '.join(wrk_cpu_prefix()) or 'no taskset'}`; "
        f"{a.duration:g} s per point after a {a.warmup:g} s warm-up; connections {', '.join(map(str, a.conc))}"
        + (f"; medians of {a.rounds} rounds" if a.rounds > 1 else ""),
        "- targets: "
        + ", ".join(f"{n} {v}" for n, v in peer_info.items() if not v.startswith("SKIP"))
        + "".join(f"; **{n} skipped** ({v[6:]})" for n, v in peer_info.items() if v.startswith("SKIP")),
        "",
        "| target | c | rps | p50 ms | p99 ms | mean batch | defaults | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        mb = f"{p.mean_batch:.2f}" if p.mean_batch is not None else "–"
        de = str(p.defaults) if p.defaults is not None else "–"
        lines.append(
            f"| {p.target} | {p.conc} | {p.rps:.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | {mb} | {de} | "
            f"{'; '.join(p.notes)} |"
        )
    if ratios:
        lines += ["", "```", *ratios, "```"]
    lines.append("")
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text(RESULTS_HEADER)
    with open(RESULTS_MD, "a") as f:
        f.write("\n" + "\n".join(lines))


def median_points(points: list[Point]) -> list[Point]:
    """One point per (target, connections): the median of every number over the rounds."""
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.target, p.conc), []).append(p)

    def med(values: list[float | None]) -> float | None:
        vals = sorted(v for v in values if v is not None)
        if not vals:
            return None
        mid = len(vals) // 2
        return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2

    out = []
    for (target, conc), ps in groups.items():
        defaults = med([p.defaults for p in ps])
        notes = [f"median of {len(ps)}"] + sorted({n for p in ps for n in p.notes})
        out.append(
            Point(
                target,
                conc,
                med([p.rps for p in ps]),
                med([p.p50_ms for p in ps]),
                med([p.p99_ms for p in ps]),
                round(med([p.requests for p in ps])),
                sum(p.non2xx for p in ps),
                sum(p.socket_errors for p in ps),
                med([p.mean_batch for p in ps]),
                None if defaults is None else round(defaults),
                notes,
            )
        )
    return out
