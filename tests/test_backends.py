"""The core (reconnection maths and the LaPerm optimizer) under other backends.

Keras fixes its backend at import, so the backend-agnostic test modules are
run again in a subprocess with ``KERAS_BACKEND`` set.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CORE_MODULES = ["test_ops.py", "test_optimizer.py", "test_optimizer_safety.py", "test_batchnorm.py"]


@pytest.mark.slow  # a second pytest session of the core modules (minutes)
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_core_under_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *[str(TESTS / m) for m in CORE_MODULES]],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    assert result.returncode == 0, f"core tests failed under KERAS_BACKEND={backend}:\n{tail}"
