#!/usr/bin/env bash
# Set up everything the test suite needs (the venv, a Docker daemon and its images), then run all of it.
# Extra arguments go to pytest. A Docker daemon started here is stopped again at the end; one that was already
# running is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
export CLIPPER_HOME="${CLIPPER_HOME:-$(mktemp -d /tmp/clipper-test-home.XXXXXX)}"
# Stop dockerd at the end only if this run started it (docker-up.sh then wrote a new pid file); the trap is set
# first so that an interrupt during the daemon's start-up stops it too.
PIDFILE=${CLIPPER_DOCKER_PIDFILE:-${CLIPPER_DOCKER_STATE_DIR:-/run/clipper-docker}/dockerd.pid}
pid_before=$(cat "$PIDFILE" 2>/dev/null || true)
stop_our_dockerd() {
    local pid_now
    pid_now=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -n "$pid_now" ] && [ "$pid_now" != "$pid_before" ]; then
        bash scripts/docker-down.sh
    fi
}
trap stop_our_dockerd EXIT
if ! bash scripts/docker-up.sh; then
    echo "test.sh: no Docker daemon; the Docker tests fail under CI=true and are skipped otherwise" >&2
fi
.venv/bin/python -m pytest -p no:cacheprovider "$@"
