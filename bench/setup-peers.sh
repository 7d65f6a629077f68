#!/usr/bin/env bash
# Install the peer serving systems the benchmark compares against, each into its own virtualenv under
# bench/.venv-peers/<peer> (gitignored), so the project's .venv stays clean and the peers' pinned
# dependencies (fastapi, uvicorn, pydantic, ...) cannot conflict with each other.
#
#   bash bench/setup-peers.sh                 # litserve mlserver ray bentoml + py-spy (tools)
#   bash bench/setup-peers.sh litserve tools  # only those
#   bash bench/setup-peers.sh litserve-torch  # LitServe with torch (CPU), for bench/frameworks.py
#
# A peer whose install fails is skipped (its venv is removed) and reported; the script itself still
# exits 0 so bench/run.sh goes on with whatever installed. Re-running is cheap: a stamp file per venv
# skips a peer that is already installed.
set -uo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
ROOT=.venv-peers
mkdir -p "$ROOT"

declare -A SPECS=(
    [litserve]="litserve"
    [litserve-torch]="litserve torch==2.13.0"  # bench/frameworks.py: the torch MLP under LitServe's own batching
    [mlserver]="mlserver uvloop<0.22"  # MLServer 1.7 workers break with uvloop>=0.22 (no implicit event loop)
    [ray]="ray[serve]"
    [bentoml]="bentoml"
    [tools]="py-spy"
)
# What each venv must be able to import (or run) afterwards, to prove the install is usable.
declare -A CHECKS=(
    [litserve]="import litserve"
    [litserve-torch]="import litserve, torch"
    [mlserver]="import mlserver"
    [ray]="import ray, ray.serve"
    [bentoml]="import bentoml"
    [tools]="import shutil, sys; sys.exit(shutil.which('py-spy', path='$ROOT/tools/bin') is None)"
)

peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(litserve mlserver ray bentoml tools)

for peer in "${peers[@]}"; do
    spec=${SPECS[$peer]:-}
    if [ -z "$spec" ]; then echo "setup-peers: unknown peer '$peer' (known: ${!SPECS[*]})" >&2; continue; fi
    venv=$ROOT/$peer
    stamp=$venv/.installed
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        echo "setup-peers: $peer already installed ($venv)"
        continue
    fi
    read -ra args <<< "$spec"
    echo "setup-peers: installing $spec into $venv (log: $venv.log)"
    rm -rf "$venv"
    if "$PYTHON" -m venv "$venv" >"$venv.log" 2>&1 &&
       "$venv/bin/python" -m pip install --upgrade pip wheel >>"$venv.log" 2>&1 &&
       "$venv/bin/python" -m pip install "${args[@]}" >>"$venv.log" 2>&1 &&
       "$venv/bin/python" -c "${CHECKS[$peer]}" >>"$venv.log" 2>&1; then
        echo "$spec" > "$stamp"
        echo "setup-peers: $peer OK ($("$venv/bin/python" -m pip show "$(echo "${args[0]}" | sed 's/\[.*//')" 2>/dev/null | awk '/^Version:/{print $2}'))"
    else
        echo "setup-peers: SKIP $peer: install failed; last lines of $venv.log:" >&2
        tail -5 "$venv.log" >&2
        rm -rf "$venv"
    fi
done
exit 0
