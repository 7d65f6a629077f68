#!/usr/bin/env bash
# The project's static checks (part of the README's test command): ruff lint (incl. ANN and EM) and format, and
# mypy --strict on clipper_core. Uses the tools the `test` extra installs into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff check"
.venv/bin/python -m ruff check .
echo "==> ruff format --check"
.venv/bin/python -m ruff format --check .
echo "==> mypy --strict (clipper_core)"
.venv/bin/python -m mypy
