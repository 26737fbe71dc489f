#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with the
# package, TensorFlow (CPU), the book tools and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# crosscheck = tf-keras (the authors' Keras 2 API, for laperm.crosscheck); tf-keras
# depends on the `tensorflow` wheel, which pip adds beside tensorflow-cpu (same version).
echo "[setup] installing laperm[cpu,book,dev,crosscheck] into .venv (first time: a few minutes)"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,book,dev,crosscheck]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "[setup] ready: $(.venv/bin/python -c 'import keras, tensorflow as tf; print(f"keras {keras.__version__}, tensorflow {tf.__version__}")')"
