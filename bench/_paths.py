"""Where the benchmark's files live, shared by every bench module."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_DIR = BENCH / "peers"
PEERS_VENV = BENCH / ".venv-peers"
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_DIR = BENCH / "results"
WRK_LUA = BENCH / "wrk.lua"
CLUSTER_NAME = "bench"
