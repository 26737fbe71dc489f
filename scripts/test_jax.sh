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
# One persistent JAX compilation cache for the tier's processes: a program compiled once (the
# device engine's Conv2 step) is read back by the next run or process that builds the same
# one (the killed-and-resumed runs: the kill test 352 -> 245 s from an empty cache, measured on a
# loaded 2-core machine).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$PWD/_build/jax-cache}"
# The fast tier of these modules (pyproject.toml); the slow Conv7 resume is not
# run here (its JAX compiles take minutes on 2 cores; test_pipeline.py checks
# the pipeline's reproducibility batch by batch).
# test_engine.py first: its Conv2 runs are the tier's longest tests, and xdist hands tests
# out in the order given, so the short ones fill both workers' ends.
.venv-jax/bin/python -m pytest -n 2 -p no:cacheprovider -W "ignore:Explicitly requested dtype int64" \
    tests/test_engine.py tests/test_backends.py tests/test_ops.py tests/test_optimizer.py \
    tests/test_optimizer_safety.py tests/test_batchnorm.py tests/test_pipeline.py \
    tests/test_experiment.py tests/test_any_backend.py tests/test_steps_per_execution.py "$@"
