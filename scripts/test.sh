#!/usr/bin/env bash
# Set everything up, then run the test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
echo "[test] data: ${LAPERM_DATA_DIR:-<none: data tests skip or download>}"
.venv/bin/python -m pytest "$@"
