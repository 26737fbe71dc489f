#!/usr/bin/env bash
# Create (or update) .venv-torch: the package with the torch backend (a CPU
# build) and the test tools, no TensorFlow.  scripts/test_torch.sh runs the
# torch tier in it.
#
# TORCH_SPEC (default torch==2.13.0, the version tested) is what pip installs;
# pip takes a CPU build where one lies in its find-links (this project's
# machines have torch-2.13.0+cpu there).  Where only a CUDA build would come
# (several GB of nvidia-* packages), this script stops with exit code 3
# instead: point TORCH_SPEC at a CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv-torch/bin/python ]; then
    echo "[setup-torch] creating .venv-torch with $($PYTHON --version)"
    "$PYTHON" -m venv .venv-torch
fi
if ! .venv-torch/bin/python -c "import torch" >/dev/null 2>&1; then
    report="$(mktemp)"
    .venv-torch/bin/python -m pip install -q --disable-pip-version-check --dry-run \
        --ignore-installed --report "$report" "$TORCH_SPEC"
    if ! .venv-torch/bin/python - "$report" <<'PY'
import json, sys
names = [p["metadata"]["name"].lower() for p in json.load(open(sys.argv[1]))["install"]]
sys.exit(1 if any(n.startswith("nvidia-") for n in names) else 0)
PY
    then
        rm -f "$report"
        echo "[setup-torch] $TORCH_SPEC would install a CUDA build of torch (several GB) here;" \
             "set TORCH_SPEC to a CPU build (a torch-*+cpu wheel file)" >&2
        exit 3
    fi
    rm -f "$report"
fi
echo "[setup-torch] installing $TORCH_SPEC and laperm[torch] into .venv-torch (first time: about a minute)"
.venv-torch/bin/python -m pip install -q --disable-pip-version-check "$TORCH_SPEC" -e ".[torch]" \
    "pytest>=8" "pytest-xdist>=3.5" "pytest-cov>=5" "hypothesis>=6.100"
echo "[setup-torch] ready: $(KERAS_BACKEND=torch .venv-torch/bin/python -c 'import keras, torch; print(f"keras {keras.__version__}, torch {torch.__version__}")')"
