#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with every package installed in editable mode.
# Safe to run repeatedly: a stamp file skips the pip step when no pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "Python 3.10 or newer is required (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
# Debian ships the venv module without ensurepip (that is in python3-venv); check for what venv really needs.
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing python3-venv (apt-get)"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "python3 cannot create virtualenvs (no ensurepip); install python3-venv" >&2
        exit 1
    fi
fi

# PySpark (the test extra, clipper-deployers[pyspark]) runs on a Java 17 runtime.
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing openjdk-17-jre-headless (apt-get) for PySpark"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    else
        echo "warning: no java found; the PySpark tests need a Java 17 runtime (apt-get install openjdk-17-jre-headless)" >&2
    fi
fi

if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    rm -rf .venv
    if ! "$PYTHON" -m venv .venv; then
        rm -rf .venv
        echo "could not create .venv with $PYTHON" >&2
        exit 1
    fi
fi
stamp=.venv/.clipper-installed
inputs=$(cat pyproject.toml frontend/pyproject.toml plugins/*/pyproject.toml tests/plugins/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inputs" ]; then
    echo "==> installing clipper packages into .venv"
    log=.venv/install.log
    pkgs=(-e '.[test]' -e ./frontend)
    for dir in plugins/*/ tests/plugins/*/; do
        # A plugin's own test dependencies come with it (its optional-dependencies "test" extra).
        if grep -q '^test = ' "$dir/pyproject.toml"; then pkgs+=(-e "./${dir%/}[test]"); else pkgs+=(-e "./$dir"); fi
    done
    if ! { .venv/bin/python -m pip install --upgrade pip setuptools wheel &&
           .venv/bin/python -m pip install "${pkgs[@]}"; } >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "pip install failed; the full log is in $log" >&2
        exit 1
    fi
    echo "$inputs" > "$stamp"
fi
