#!/usr/bin/env bash
# Create (or update) .venv-jax: the package with the JAX backend and the test
# tools, and no TensorFlow (the environment `pip install "laperm[jax]"` gives).
# scripts/test_jax.sh runs the core tests in it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-jax/bin/python ]; then
    echo "[setup-jax] creating .venv-jax with $($PYTHON --version)"
    "$PYTHON" -m venv .venv-jax
fi
echo "[setup-jax] installing laperm[jax,dev] into .venv-jax (first time: about a minute)"
.venv-jax/bin/python -m pip install -q --disable-pip-version-check -e ".[jax,dev]"
if .venv-jax/bin/python -c "import tensorflow" >/dev/null 2>&1; then
    echo "[setup-jax] error: TensorFlow is installed in .venv-jax; this environment must not have it" >&2
    exit 1
fi
echo "[setup-jax] ready: $(KERAS_BACKEND=jax .venv-jax/bin/python -c 'import keras, jax; print(f"keras {keras.__version__}, jax {jax.__version__}, no TensorFlow")')"
