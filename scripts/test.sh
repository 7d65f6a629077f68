#!/usr/bin/env bash
# Set up everything the test suite needs, then run all of it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CLIPPER_HOME="${CLIPPER_HOME:-$(mktemp -d /tmp/clipper-test-home.XXXXXX)}"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
