#!/usr/bin/env bash
# The benchmark suite in one command (see bench/README.md):
#
#   bash bench/run.sh                          # everything: ours, the Tornado baseline, every installed peer
#   bash bench/run.sh --duration 5 --peers tornado,litserve
#   BENCH_SKIP_PEER_SETUP=1 bash bench/run.sh  # do not (re)install the peers first
#   bash bench/run.sh frameworks --rounds 3    # the framework models instead (bench/frameworks.py)
#
# Installs wrk (Debian package) when missing, refreshes the project's .venv (scripts/setup.sh), installs the
# peers into bench/.venv-peers (bench/setup-peers.sh; a failed peer is skipped), then runs bench/run.py with the
# arguments given. The output is also saved to bench/results/run-<time>.log. Whatever happens (error, Ctrl-C,
# kill of run.py), the EXIT trap stops every process the run started.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing wrk"
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else
        echo "wrk is not installed: apt-get install -y wrk (as root)" >&2
        exit 1
    fi
fi
bash scripts/setup.sh
if [ "${BENCH_SKIP_PEER_SETUP:-0}" != 1 ]; then
    bash bench/setup-peers.sh
fi

script=bench/run.py
kind=run
if [ "${1:-}" = frameworks ]; then
    script=bench/frameworks.py
    kind=frameworks
    shift
fi

mkdir -p bench/results
state=bench/results/.$kind-state-$$.json
log=bench/results/$kind-$(date +%Y%m%d-%H%M%S).log
cleanup() { .venv/bin/python "$script" --cleanup "$state" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# tee -i: on Ctrl-C tee keeps copying run.py's clean-up messages instead of dying first.
.venv/bin/python -u "$script" --state "$state" "$@" 2>&1 | tee -i "$log"
