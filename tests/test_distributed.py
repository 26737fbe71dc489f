"""LaPerm data-parallel on two simulated CPU devices (TensorFlow and JAX).

Each backend runs in a fresh process (``tests/distributed/check_data_parallel.py``),
because the two devices must exist before the backend starts: two logical CPU
devices under ``tf.distribute.MirroredStrategy``, and
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` with
``keras.distribution.DataParallel`` under JAX.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


SCRIPT = Path(__file__).parent / "distributed" / "check_data_parallel.py"


def _run(backend: str, tmp_path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, str(SCRIPT), backend, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=1500)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_laperm_on_two_devices(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    result = _run(backend, tmp_path)
    assert result["devices"] == 2
    # Conv2 with TensorFlow's fused kernels under TensorFlow (ResNet8 has the Keras ones there);
    # under JAX, where fused layers compute as Keras's, with the Keras kernels
    bn_models = ("conv2_fused" if backend == "tensorflow" else "conv2", "resnet8")
    for name in ("small_net", *bn_models):
        r = result[name]
        assert r["same_theta0"], name
        # every permuted variable is still a permutation of theta_0, on the replicas' weights
        assert r["permutations"], name
        assert (r["steps"], r["syncs"]) == (9, 3), name
        # saved under the strategy, reloaded under it, and resumed: the counters go on
        assert r["reloaded_steps"] == 9 and r["reloaded_weights_equal"], name
        assert r["resumed_syncs"] == 6, name
    # without BatchNorm, two devices train the same weights as one (float round-off only);
    # with it, each replica normalises its own half-batch (TensorFlow), so only the invariant holds
    assert result["small_net"]["max_weight_diff"] < 1e-5
    for name in bn_models:  # the BatchNorm models
        bn = result[name]
        assert bn["bn_batches"] == 4 and bn["bn_statistics_changed"], name
        assert bn["bn_trainables_unchanged"], name


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_reproduce_on_two_devices_gives_the_one_device_result(backend, tmp_path):
    """``python -m laperm.reproduce --devices 2``: F1 (no BatchNorm) as on one device, also
    when the two-device run is killed after its first epoch and resumed by the same command."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    results = {}
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        # two epochs: the first before the kill, the second after the resume
        command = [sys.executable, "-m", "laperm.reproduce", "f1", "--epochs", "2",
                   "--train-fraction", "0.1", "--devices", str(devices), "--out", str(out)]
        run_dir = out / "f1_laperm_s0_e2_f10"
        if devices == 2:  # killed (SIGKILL) once its first epoch's checkpoint is on disk
            first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 900
            while first.poll() is None and time.monotonic() < deadline:
                # the checkpoint is the resume point, written after the epoch's history row
                if (run_dir / "checkpoint.keras").exists():
                    first.kill()
                    break
                time.sleep(0.05)
            first.wait(timeout=60)
            assert first.returncode != 0, "the run ended before it could be killed"
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        results[devices] = json.loads((run_dir / "result.json").read_text())
    assert results[1]["devices"] == 1 and results[2]["devices"] == 2
    assert results[2]["resumed_at_epochs"] and not results[1]["resumed_at_epochs"]
    assert results[2]["config_hash"] == results[1]["config_hash"]  # devices are not the config
    for key in ("test_accuracy_at_best_val", "final_test_accuracy", "best_epoch"):
        assert results[2][key] == pytest.approx(results[1][key], abs=2e-4), key


def test_more_devices_than_there_are_is_one_clear_error():
    from laperm.run.devices import DevicesError, data_parallel

    with pytest.raises(DevicesError, match="64 devices asked for"):
        with data_parallel(64):
            pass
    with pytest.raises(DevicesError, match="positive whole number"):
        with data_parallel(0):
            pass
    with data_parallel(None) as strategy:
        assert strategy is None
