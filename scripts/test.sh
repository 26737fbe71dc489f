#!/usr/bin/env bash
# Set everything up, then run the whole test suite, every tier: the fast tests,
# the slow ones (training real runs) and the book (a smoke build of every page);
# then the JAX tier (an environment without TensorFlow, scripts/test_jax.sh) and
# the torch tier (scripts/test_torch.sh).  Each tier lists its slowest tests
# (--durations) and the script ends with each tier's wall time, so a slow test is
# seen the day it lands.
# Extra arguments go to the main suite's pytest (a later -m replaces the tier selection).
# A bare `pytest` runs only the fast tier (pyproject.toml).
# LAPERM_COVERAGE=1: line coverage of laperm/ over every tier, the processes the tests start
# included (pyproject.toml's [tool.coverage.run]); the report goes to _build/coverage/report.txt
# and its total is printed at the end.  Slower: CI runs without it.
set -euo pipefail
cd "$(dirname "$0")/.."

TIMES=()
timed() {  # timed NAME COMMAND...: run COMMAND and record its wall time under NAME
    local name="$1" start=$SECONDS status=0 s
    shift
    "$@" || status=$?
    s=$((SECONDS - start))
    TIMES+=("$(printf '%-10s %5d s = %d.%d min' "$name" "$s" $((s / 60)) $((s % 60 * 10 / 60)))$(
        [ "$status" -eq 0 ] || echo " (failed: exit $status)")")
    return "$status"
}
summary() {
    echo "[test] machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
        "$(nproc) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "[test] wall time of each tier (load average now: $(cut -d' ' -f1-3 /proc/loadavg)):"
    printf '[test]   %s\n' "${TIMES[@]}"
    printf '[test]   %-10s %5d s = %d.%d min\n' total "$SECONDS" $((SECONDS / 60)) \
        $((SECONDS % 60 * 10 / 60))
}
finish() {
    summary
    jobs -p | xargs -r kill 2>/dev/null || true  # a setup still running when a tier failed
}
trap finish EXIT

# The JAX and torch tiers' environments install beside the main one (downloads and
# unpacking, mostly one core each: the second core is otherwise idle while the main
# environment installs); their logs are printed before their tiers.
mkdir -p _build
bash scripts/setup_jax.sh > _build/setup-jax.log 2>&1 & jax_setup=$!
bash scripts/setup_torch.sh > _build/setup-torch.log 2>&1 & torch_setup=$!
timed setup bash scripts/setup.sh
source scripts/env.sh
# One persistent JAX compilation cache for every JAX process of the run (scripts/test_jax.sh).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$PWD/_build/jax-cache}"
echo "[test] data: ${LAPERM_DATA_DIR:-<none: data tests skip or download>}"
COV=()
if [ "${LAPERM_COVERAGE:-0}" = 1 ]; then
    rm -rf _build/coverage && mkdir -p _build/coverage
    export COVERAGE_FILE="$PWD/_build/coverage/data"
    COV=(--cov=laperm --cov-report= --cov-append)
fi
# Two xdist workers (this project's CI has 2 cores); the book's tests all run on one of
# them, so its smoke build is made once (tests/conftest.py: pytest_xdist_make_scheduler).
timed "main suite" .venv/bin/python -m pytest -n 2 \
    -m "slow or book or not (slow or book)" --durations=25 "${COV[@]}" "$@"
echo "[test] the JAX tier, without TensorFlow"
jax_status=0
wait "$jax_setup" || jax_status=$?
cat _build/setup-jax.log
[ "$jax_status" -eq 0 ] || { echo "[test] setup_jax.sh failed (exit $jax_status)"; exit "$jax_status"; }
timed "JAX tier" env LAPERM_JAX_READY=1 bash scripts/test_jax.sh --durations=10 "${COV[@]}"
echo "[test] the torch tier"
torch_status=0
wait "$torch_setup" || torch_status=$?
cat _build/setup-torch.log
timed "torch tier" env LAPERM_TORCH_SETUP_STATUS="$torch_status" bash scripts/test_torch.sh \
    --durations=10 "${COV[@]}"
if [ "${LAPERM_COVERAGE:-0}" = 1 ]; then
    .venv/bin/python -m coverage combine -q 2>/dev/null || true  # pytest-cov combined most
    .venv/bin/python -m coverage report > _build/coverage/report.txt
    echo "[test] line coverage of laperm/, every tier: $(tail -1 _build/coverage/report.txt)" \
        "(per module: _build/coverage/report.txt)"
fi
