#!/usr/bin/env bash
# The torch tier: the optimizer, its invariant under fit, save/load, the
# pipeline and tiny experiments under KERAS_BACKEND=torch in .venv-torch, and
# laperm.torch (LaPerm as a torch.optim.Optimizer, compared with laperm.LaPerm)
# (scripts/setup_torch.sh makes it, with a CPU build of torch).  When no CPU
# build can be had, it says so and exits 0 (the tier is skipped, not failed);
# LAPERM_REQUIRE_TORCH=1 makes that an error.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# $LAPERM_TORCH_SETUP_STATUS: test.sh ran setup_torch.sh already (beside the main suite).
status="${LAPERM_TORCH_SETUP_STATUS:-}"
if [ -z "$status" ]; then
    status=0
    bash scripts/setup_torch.sh || status=$?
fi
if [ "$status" -eq 3 ] && [ "${LAPERM_REQUIRE_TORCH:-0}" != "1" ]; then
    echo "[test-torch] skipped: no CPU build of torch to install (see above)"
    exit 0
elif [ "$status" -ne 0 ]; then
    exit "$status"
fi
source scripts/env.sh
export KERAS_BACKEND=torch
# Every tier but the book of these modules: the slow one is Conv7's resumed
# run (augmentation and dropout of epoch e are functions of (seed, e)).
.venv-torch/bin/python -m pytest -n 2 -p no:cacheprovider -m "not book" \
    tests/test_backends.py tests/test_ops.py tests/test_optimizer.py \
    tests/test_optimizer_safety.py tests/test_batchnorm.py tests/test_pipeline.py \
    tests/test_experiment.py tests/test_any_backend.py tests/test_steps_per_execution.py \
    tests/test_torch_laperm.py tests/test_frameworks_torch_page.py "$@"
