"""Keras backends: the core under other backends, no TensorFlow needed, a missing one told.

Keras fixes its backend at import, so the backend-agnostic test modules (the
ops, the optimizer and its safety, BatchNorm, the pipeline, experiments) run
again in the JAX and torch tiers (scripts/test_jax.sh, scripts/test_torch.sh),
each in its own virtual environment, the JAX one without TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from laperm.run import backends

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CORE_MODULES = ["test_ops.py", "test_optimizer.py", "test_optimizer_safety.py", "test_batchnorm.py",
                "test_pipeline.py", "test_experiment.py", "test_any_backend.py"]


@pytest.mark.parametrize("script", ["test_jax.sh", "test_torch.sh"])
def test_the_jax_and_torch_tiers_run_the_core_modules(script):
    """The core modules run under each other backend there (and no longer in a
    second pytest session of the main suite)."""
    text = (REPO / "scripts" / script).read_text()
    missing = [m for m in CORE_MODULES if f"tests/{m}" not in text]
    assert not missing, f"scripts/{script} does not run {missing}"


def _python(code: str, backend: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO, **kwargs)


def _missing_backend() -> str:
    for name in ("torch", "jax", "openvino"):
        if not backends.is_installed(backends.BACKEND_PACKAGES[name]):
            return name
    pytest.skip("every Keras backend is installed here")


def test_a_missing_backend_is_one_line_and_exit_code_2(tmp_path, monkeypatch):
    missing = _missing_backend()
    proc = _python(["-m", "laperm.reproduce", "f1", "--epochs", "1", "--out", str(tmp_path)],
                   missing)
    monkeypatch.setenv("KERAS_BACKEND", missing)
    monkeypatch.setitem(sys.modules, "keras", None)  # as before `import keras`
    expected = backends.missing_backend_message()
    assert expected.startswith(f"the Keras backend '{missing}' (KERAS_BACKEND={missing}) is "
                               "not installed: pip install")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {expected}"]
    assert not any(tmp_path.iterdir())


def test_import_laperm_with_a_missing_backend_raises_one_clear_error():
    missing = _missing_backend()
    proc = _python(["-c", "import laperm"], missing)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert last.startswith("laperm.run.backends.BackendNotInstalledError: the Keras backend "
                           f"'{missing}' (KERAS_BACKEND={missing}) is not installed: pip install")


def test_the_configured_backend_follows_keras_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backends.configured_backend() == ("tensorflow", "the Keras default")
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert backends.configured_backend() == ("jax", str(tmp_path / "keras.json"))
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert backends.configured_backend() == ("torch", "KERAS_BACKEND=torch")
    monkeypatch.setenv("KERAS_BACKEND", "bogus")
    monkeypatch.setitem(sys.modules, "keras", None)  # as before `import keras`
    assert "unknown Keras backend 'bogus'" in backends.missing_backend_message()


NO_TENSORFLOW = textwrap.dedent("""
    import sys
    sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError from here on
    import laperm, laperm.experiment, laperm.reproduce, laperm.data, laperm.data.pipeline
    import laperm.run.train, laperm.method.callbacks, laperm.method.batchnorm, laperm.run.evaluation, laperm.crosscheck
    from laperm import crosscheck, data
    assert data.default_pipeline() == "pydataset"
    try:
        crosscheck.authors._import_tf_keras()
    except crosscheck.CrossCheckUnavailable as exc:
        print("CROSSCHECK:", exc)
    print("OK")
""")


def test_laperm_imports_without_tensorflow_under_another_backend():
    other = next((b for b in ("jax", "torch") if backends.is_installed(b)), None)
    if other is None:
        pytest.skip("neither JAX nor torch is installed")
    proc = _python(["-c", NO_TENSORFLOW], other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "OK"
    assert lines[0] == ("CROSSCHECK: The authors' code needs TensorFlow and tf-keras: "
                        f"{__import__('laperm.crosscheck').crosscheck.INSTALL_HINT}.")


@pytest.mark.skipif(os.environ.get("LAPERM_EXPECT_NO_TENSORFLOW") != "1",
                    reason="only in the environment without TensorFlow (scripts/test_jax.sh)")
def test_this_environment_has_no_tensorflow():
    assert not backends.has_tensorflow()
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
