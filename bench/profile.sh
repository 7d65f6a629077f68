#!/usr/bin/env bash
# Profile the query frontend with py-spy while wrk drives the noop model (default 64 connections):
#
#   bash bench/profile.sh [--duration 10] [--profile-conc 64]
#
# Writes bench/results/profile-<time>-frontend-noop-c64.svg (flamegraph), .txt (collapsed stacks) and
# -top.txt (functions by self / inclusive share of samples). py-spy lives in bench/.venv-peers/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
bash scripts/setup.sh
bash bench/setup-peers.sh tools
mkdir -p bench/results
state=bench/results/.run-state-$$.json
cleanup() { .venv/bin/python bench/run.py --cleanup "$state" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
.venv/bin/python -u bench/run.py --profile --state "$state" "$@"
