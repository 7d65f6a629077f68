#!/usr/bin/env bash
# Set up the project, start a local Clipper cluster, deploy `feature_sum`, and print a prediction.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/quickstart.py "$@"
