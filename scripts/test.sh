#!/usr/bin/env bash
# Set up everything the test suite needs (the venv, a Docker daemon and its images), then run all of it.
# Extra arguments go to pytest. A Docker daemon started here is stopped again at the end; one that was already
# running is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CLIPPER_HOME="${CLIPPER_HOME:-$(mktemp -d /tmp/clipper-test-home.XXXXXX)}"
if ! bash scripts/docker-up.sh; then
    echo "test.sh: no Docker daemon; the Docker tests fail under CI=true and are skipped otherwise" >&2
fi
trap 'bash scripts/docker-down.sh' EXIT
.venv/bin/python -m pytest -p no:cacheprovider "$@"
