#!/usr/bin/env bash
# Set everything up, then run the whole test suite, every tier: the fast tests,
# the slow ones (training real runs) and the book (a smoke build of every page).
# Extra arguments go to pytest (a later -m replaces the tier selection).
# A bare `pytest` runs only the fast tier (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
echo "[test] data: ${LAPERM_DATA_DIR:-<none: data tests skip or download>}"
.venv/bin/python -m pytest -m "slow or book or not (slow or book)" "$@"
