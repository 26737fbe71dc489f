#!/usr/bin/env bash
# The JAX tier: the core tests and a tiny experiment under KERAS_BACKEND=jax in
# .venv-jax, an environment without TensorFlow (scripts/setup_jax.sh makes it).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# $LAPERM_JAX_READY=1: test.sh ran setup_jax.sh already (beside the main suite).
[ "${LAPERM_JAX_READY:-0}" = 1 ] || bash scripts/setup_jax.sh
source scripts/env.sh
export KERAS_BACKEND=jax JAX_PLATFORMS=cpu LAPERM_EXPECT_NO_TENSORFLOW=1
# The fast tier of these modules (pyproject.toml); the slow Conv7 resume is not
# run here (its JAX compiles take minutes on 2 cores; test_pipeline.py checks
# the pipeline's reproducibility batch by batch).
.venv-jax/bin/python -m pytest -n 2 -p no:cacheprovider -W "ignore:Explicitly requested dtype int64" \
    tests/test_backends.py tests/test_ops.py tests/test_optimizer.py \
    tests/test_optimizer_safety.py tests/test_batchnorm.py tests/test_pipeline.py \
    tests/test_experiment.py tests/test_any_backend.py tests/test_steps_per_execution.py \
    tests/test_engine.py "$@"
