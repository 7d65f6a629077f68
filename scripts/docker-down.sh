#!/usr/bin/env bash
# Stop the Docker daemon that scripts/docker-up.sh started (by the PID it recorded), and nothing else.
# A daemon that docker-up did not start is left running. Containers of the daemon are stopped by dockerd itself
# on SIGTERM (live-restore is off by default).
set -euo pipefail

STATE_DIR=${CLIPPER_DOCKER_STATE_DIR:-/run/clipper-docker}
PIDFILE=${CLIPPER_DOCKER_PIDFILE:-$STATE_DIR/dockerd.pid}
TIMEOUT=${CLIPPER_DOCKER_STOP_TIMEOUT:-60}

say() { echo "docker-down: $*" >&2; }

if [ ! -f "$PIDFILE" ]; then
    say "no $PIDFILE: docker-up did not start a daemon; nothing to stop"
    exit 0
fi
pid=$(cat "$PIDFILE")
if [ -z "$pid" ] || [ ! -r "/proc/$pid/cmdline" ] || ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dockerd; then
    say "dockerd $pid from $PIDFILE is no longer running"
    rm -f "$PIDFILE"
    exit 0
fi
say "stopping dockerd $pid"
kill -TERM "$pid"
for _ in $(seq 1 "$TIMEOUT"); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$PIDFILE"
        say "dockerd $pid stopped"
        exit 0
    fi
    sleep 1
done
say "dockerd $pid did not stop within ${TIMEOUT}s; sending SIGKILL"
kill -KILL "$pid" 2>/dev/null || true
rm -f "$PIDFILE"
