"""A whole experiment under the JAX or torch Keras backend (no TensorFlow needed).

Run by scripts/test_jax.sh (JAX, TensorFlow not installed) and
scripts/test_torch.sh (torch); under TensorFlow the same behaviour is tested
by test_optimizer.py, test_experiment.py and test_resume.py, so this module
skips there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from keras import ops

import laperm
from laperm.method import ops as lops
from laperm.experiment import paper_config, run

BACKEND = keras.backend.backend()
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    BACKEND == "tensorflow",
    reason="for the JAX and torch tiers; TensorFlow is covered by the main suite")

#: History columns equal between an interrupted and an uninterrupted run.
MEASURED = ["epoch", "loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
            "test_accuracy", "test_accuracy_unsynced", "learning_rate", "sync_count"]


def _is_permutation_of_theta0(opt) -> bool:
    return all(
        np.array_equal(np.sort(ops.convert_to_numpy(lops.to_rows(v.value)), -1),
                       ops.convert_to_numpy(s.value))
        for v, s in zip(opt.permuted_variables, opt.sorted_initial_values))


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(3, activation="softmax"),
    ])


def _blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(size=(n, 8, 8, 1)).astype("float32") + y[:, None, None, None], y


def test_after_every_sync_under_fit_each_vector_is_a_permutation_of_theta0():
    model = _conv_model()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=3, skip_bias=False)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    opt.build(model.trainable_variables)
    checked = []

    class AfterEverySync(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if hasattr(self.model, "jax_state_sync"):  # JAX: the variables hold the new values
                self.model.jax_state_sync()
            count = int(ops.convert_to_numpy(opt.sync_count))
            if count > len(checked):
                checked.append(_is_permutation_of_theta0(opt))

    x, y = _blobs()
    first = [ops.convert_to_numpy(v.value).copy() for v in opt.permuted_variables]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[AfterEverySync()])
    assert checked == [True] * 4  # 12 steps, k = 3
    assert any(not np.array_equal(ops.convert_to_numpy(v.value), w)
               for v, w in zip(opt.permuted_variables, first))  # it did reconnect


LOAD_AND_TRAIN = textwrap.dedent("""
    import sys
    import keras, numpy as np
    from keras import ops
    import laperm
    from laperm.method import ops as lops

    model = keras.models.load_model(sys.argv[1])
    opt = laperm.find_laperm(model)
    assert type(opt).__name__ == "LaPerm" and keras.backend.backend() == sys.argv[2]
    before = int(ops.convert_to_numpy(opt.sync_count))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 8, 8, 1)).astype("float32")
    model.fit(x, rng.integers(0, 3, 24), batch_size=8, verbose=0)
    assert int(ops.convert_to_numpy(opt.sync_count)) == before + 1
    for v, s in zip(opt.permuted_variables, opt.sorted_initial_values):
        assert np.array_equal(np.sort(ops.convert_to_numpy(lops.to_rows(v.value)), -1),
                              ops.convert_to_numpy(s.value)), v.path
    print("LOADED", before)
""")


def test_a_saved_model_loads_and_trains_on_in_a_new_process(tmp_path):
    model = _conv_model()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    x, y = _blobs()
    model.fit(x, y, batch_size=8, verbose=0)  # 6 steps: 2 syncs
    model.save(tmp_path / "m.keras")
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_TRAIN, str(tmp_path / "m.keras"),
                           BACKEND], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": BACKEND})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["LOADED", "2"]


def test_an_interrupted_tiny_experiment_resumes_to_the_uninterrupted_history(
        tmp_path, data_dir, interrupt_run):
    cfg = paper_config("f1", epochs=3, train_fraction=0.02, validation_size=500, sync_period=5)
    expected, _ = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    interrupt_run(cfg, tmp_path / "b", 0, data_dir=data_dir, progress=False)
    history, result = run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    pd.testing.assert_frame_equal(history[MEASURED], expected[MEASURED])
    assert result["resumed_at_epochs"] == [1]
    assert result["versions"]["backend"] == BACKEND
    assert result["provenance"]["backend"] == BACKEND


@pytest.fixture
def tiny_mnist(tmp_path, data_dir):
    """The first 250 training and 100 test images of MNIST (the evaluations dominated
    tiny runs: each epoch evaluates the test set twice and the validation set once)."""
    from laperm import data

    (x, y), (xt, yt) = data.load("mnist", data_dir)
    folder = tmp_path / "tiny"
    folder.mkdir()
    np.savez(folder / "mnist.npz", x_train=x[:250], y_train=y[:250], x_test=xt[:100],
             y_test=yt[:100])
    return folder


@pytest.mark.slow
def test_resumed_augmented_run_with_dropout_is_reproducible(tmp_path, tiny_mnist, interrupt_run):
    """Conv7: augmentation (the PyDataset pipeline) and dropout of epoch e
    depend on (seed, e) only, under this backend too (under torch, unseeded
    dropout draws from torch's generator: laperm seeds it per epoch).
    150 training images (3 steps of 50 an epoch), 100 validation and 100 test images."""
    data_dir = tiny_mnist
    cfg = paper_config("conv7_k20", epochs=2, validation_size=100, bn_batches=4)
    expected, _ = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    interrupt_run(cfg, tmp_path / "b", 0, data_dir=data_dir, progress=False)
    history, result = run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    pd.testing.assert_frame_equal(history[MEASURED], expected[MEASURED])
    assert result["resumed_at_epochs"] == [1]


def test_reproduce_one_epoch_of_f1(tmp_path, data_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "laperm.reproduce", "f1", "--epochs", "1", "--train-fraction",
         "0.02", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "KERAS_BACKEND": BACKEND, "LAPERM_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "f1_laperm_s0_e1_f2"
    result = json.loads((folder / "result.json").read_text())
    assert result["config_hash"] == paper_config("f1", epochs=1, train_fraction=0.02).hash
    assert result["versions"]["backend"] == BACKEND
    assert len(pd.read_csv(folder / "history.csv")) == 1
    assert not (folder / "checkpoint.keras").exists()  # finished: removed
    assert 0 < result["final_test_accuracy"] <= 1
