#!/usr/bin/env bash
# Set everything up, then run the whole test suite, every tier: the fast tests,
# the slow ones (training real runs) and the book (a smoke build of every page);
# then the JAX tier (an environment without TensorFlow, scripts/test_jax.sh) and
# the torch tier (scripts/test_torch.sh).
# Extra arguments go to the main suite's pytest (a later -m replaces the tier selection).
# A bare `pytest` runs only the fast tier (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
echo "[test] data: ${LAPERM_DATA_DIR:-<none: data tests skip or download>}"
.venv/bin/python -m pytest -m "slow or book or not (slow or book)" "$@"
echo "[test] the JAX tier, without TensorFlow"
bash scripts/test_jax.sh
echo "[test] the torch tier"
bash scripts/test_torch.sh
