#!/usr/bin/env bash
# Make sure a Docker daemon answers, for the Docker container manager's tests (DESIGN.md §5).
#
# - When run as root and docker.io / debootstrap / docker-registry are missing, installs them with apt-get, with a
#   temporary /usr/sbin/policy-rc.d (unless one exists) so that the packages do not start their own services.
# - When no daemon answers, starts `dockerd --bridge=none --iptables=false` in the background and records its PID in
#   $CLIPPER_DOCKER_PIDFILE (default /run/clipper-docker/dockerd.pid), so that scripts/docker-down.sh stops only
#   what this script started. A daemon that was already running is left alone.
# Exits 0 when a daemon answers, 1 otherwise (with the reason and the last lines of the daemon's log).
set -euo pipefail

STATE_DIR=${CLIPPER_DOCKER_STATE_DIR:-/run/clipper-docker}
PIDFILE=${CLIPPER_DOCKER_PIDFILE:-$STATE_DIR/dockerd.pid}
LOG=${CLIPPER_DOCKERD_LOG:-/var/log/clipper-dockerd.log}
TIMEOUT=${CLIPPER_DOCKER_START_TIMEOUT:-90}

say() { echo "docker-up: $*" >&2; }

daemon_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_OURS=0

remove_policy_rc_d() {
    if [ "$POLICY_RC_D_OURS" = 1 ]; then
        rm -f "$POLICY_RC_D"
        POLICY_RC_D_OURS=0
    fi
}

install_missing() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]} and not root (or no apt-get): install them yourself"
        return 0
    fi
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d (exit 101 = "action forbidden") keeps the packages' maintainer scripts from starting the distro's
    # dockerd (with a bridge and iptables rules) under an init system: we start (and stop) exactly one ourselves.
    # An existing policy-rc.d is left as it is; one written here is removed afterwards, also on failure.
    if [ ! -e "$POLICY_RC_D" ]; then
        trap remove_policy_rc_d EXIT
        trap 'exit 1' INT TERM HUP  # so that the EXIT trap runs on these too
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
        chmod +x "$POLICY_RC_D"
        POLICY_RC_D_OURS=1
    fi
    # shellcheck disable=SC2046  # one word per package
    apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
    remove_policy_rc_d
    trap - EXIT INT TERM HUP
}

install_missing

if daemon_answers; then
    say "a Docker daemon already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); not starting one"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    say "no Docker daemon answers and dockerd is not installed (apt-get install docker.io as root)"
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    say "no Docker daemon answers and only root can start dockerd: run 'sudo bash scripts/docker-up.sh'"
    exit 1
fi

mkdir -p "$STATE_DIR" "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
if [ -f "$PIDFILE" ]; then
    old=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -n "$old" ] && [ -r "/proc/$old/cmdline" ] && tr '\0' ' ' <"/proc/$old/cmdline" | grep -q dockerd; then
        say "dockerd $old (started earlier by docker-up) is running but does not answer yet; waiting"
    else
        rm -f "$PIDFILE"
    fi
fi

if [ ! -f "$PIDFILE" ]; then
    # A stale pid file of a dead daemon makes dockerd refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    say "starting dockerd --bridge=none --iptables=false (log: $LOG)"
    # setsid: the daemon must outlive this script and the shell that ran it.
    setsid dockerd --bridge=none --iptables=false >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
fi

pid=$(cat "$PIDFILE")
for _ in $(seq 1 "$TIMEOUT"); do
    if daemon_answers; then
        say "dockerd $pid answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); pid in $PIDFILE"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        say "dockerd exited during start-up; last lines of $LOG:"
        tail -n 30 "$LOG" >&2 || true
        rm -f "$PIDFILE"
        exit 1
    fi
    sleep 1
done
say "dockerd $pid did not answer within ${TIMEOUT}s; last lines of $LOG:"
tail -n 30 "$LOG" >&2 || true
exit 1
