"""The authors' published checkpoints load into :mod:`laperm.models` and score.

Files: ``../shared/reference/pretrained/{Conv7,F1,F2,resnet50,resnet50_30,
resnet50_50,resnet50_70}.h5`` (Keras 2.3 weight files, loaded by layer order).
Data are read directly with ``np.load`` from the ``data_dir`` fixture.

Expected accuracies
-------------------
* Conv7 99.72 % and F1 85.46 % on the 10000 MNIST test images: exactly the
  published numbers (SPEC 3).
* F2 and the four ResNet50 files: **measured here** with Keras 3.15.1 /
  TensorFlow 2.21 (CPU) on models built by :mod:`laperm.models`.  F2's
  published number is 78.14 %, but the released file scores 70.68 %.  The
  published ResNet50 numbers (92.53 / 92.32 / 92.02 / 90.97 %) are on the full
  10000-image CIFAR-10 test set; only the exact first 1000 test images are
  available offline, so the values below are on those 1000 images (standard
  error about 0.8 points) and are not comparable one-to-one.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from laperm import models

# Published, exact (10000 MNIST test images).
CONV7_ACCURACY = 0.9972
F1_ACCURACY = 0.8546

# Measured here (Keras 3.15.1, TF 2.21 CPU); F2 on the 10000 MNIST test images.
F2_ACCURACY_MEASURED = 0.7068  # published: 0.7814

# Measured here (Keras 3.15.1, TF 2.21 CPU) on the exact FIRST 1000 CIFAR-10 test
# images, input = x/255 minus the per-pixel mean of the /255 training images.
# Published (full 10000-image test set): 0.9253, 0.9232, 0.9202, 0.9097.
RESNET_ACCURACY_MEASURED = {
    "resnet50": 0.938,
    "resnet50_30": 0.927,
    "resnet50_50": 0.917,
    "resnet50_70": 0.917,
}
# Fraction of exactly-zero entries over all kernels (conv and dense, ndim > 1),
# measured here: the random pruning rate p of Section 5.4.
RESNET_ZERO_FRACTION_MEASURED = {
    "resnet50": 0.0,
    "resnet50_30": 0.29989,
    "resnet50_50": 0.49928,
    "resnet50_70": 0.69977,
}
RESNET_NOMINAL_P = {"resnet50": 0.0, "resnet50_30": 0.3, "resnet50_50": 0.5, "resnet50_70": 0.7}

MEASURED_TOL = 0.005
BATCH = 500


def _accuracy(model, x, y) -> float:
    probs = model.predict(x, batch_size=BATCH, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(y).reshape(-1)))


@pytest.fixture(scope="module")
def mnist_test(data_dir):
    with np.load(data_dir / "mnist.npz") as d:
        x, y = d["x_test"], d["y_test"]
    return x.astype("float32") / 255.0, y


@pytest.fixture(scope="module")
def cifar_test(data_dir):
    path = data_dir / "cifar10.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with np.load(path) as d:
        x_train, x_test, y_test = d["x_train"], d["x_test"], d["y_test"]
    # Per-pixel mean of the /255 training images, shape (32, 32, 3); accumulate in
    # float64 without materialising a float copy of the training set.
    mean = (x_train.mean(axis=0, dtype=np.float64) / 255.0).astype("float32")
    assert mean.shape == (32, 32, 3)
    assert x_test.shape[0] == 1000
    return x_test.astype("float32") / 255.0 - mean, y_test


@pytest.fixture(scope="module")
def resnet50_model():
    # One model for the four files: load_weights overwrites every variable.
    return models.resnet(50)


# --------------------------------------------------------------------------- #
# MNIST
# --------------------------------------------------------------------------- #
def test_conv7_checkpoint(reference_checkpoints, mnist_test):
    x, y = mnist_test
    model = models.conv7()
    model.load_weights(reference_checkpoints / "Conv7.h5")
    assert _accuracy(model, x[..., None], y) == pytest.approx(CONV7_ACCURACY, abs=1e-4)


@pytest.mark.parametrize(
    "name, factory, expected, tol, value, nonzero",
    [
        ("F1", models.f1, F1_ACCURACY, 1e-4, 0.08, 0.598),
        ("F2", models.f2, F2_ACCURACY_MEASURED, MEASURED_TOL, 0.03, 0.073),
    ],
)
def test_f1_f2_checkpoints(reference_checkpoints, mnist_test, name, factory, expected, tol,
                           value, nonzero):
    x, y = mnist_test
    model = factory(use_bias=True)
    model.load_weights(reference_checkpoints / f"{name}.h5")
    assert _accuracy(model, x, y) == pytest.approx(expected, abs=tol)

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    # The stored biases are all zero ...
    for layer in dense:
        assert not np.any(np.asarray(layer.bias))
    # ... and the kernels hold exactly the two values {0, v} (shared value, Section 5.5).
    kernels = [np.asarray(layer.kernel) for layer in dense]
    for kernel in kernels:
        np.testing.assert_array_equal(np.unique(kernel), np.array([0.0, value], np.float32))
    share = sum(int(np.count_nonzero(k)) for k in kernels) / sum(k.size for k in kernels)
    assert share == pytest.approx(nonzero, abs=0.001)

    # Hence the paper's bias-free model with the same kernels gives the same accuracy.
    plain = factory(use_bias=False)
    for target, source in zip(
        [layer for layer in plain.layers if isinstance(layer, keras.layers.Dense)], dense
    ):
        target.kernel.assign(source.kernel)
    assert _accuracy(plain, x, y) == pytest.approx(expected, abs=tol)


# --------------------------------------------------------------------------- #
# CIFAR-10 ResNet50 (dense and randomly pruned at p = 30/50/70 %)
# --------------------------------------------------------------------------- #
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RESNET_ACCURACY_MEASURED))
def test_resnet50_checkpoints(reference_checkpoints, cifar_test, resnet50_model, name):
    x, y = cifar_test
    model = resnet50_model
    model.load_weights(reference_checkpoints / f"{name}.h5")

    kernels = [np.asarray(w) for w in model.weights if w.path.endswith("kernel")]
    assert len(kernels) == 51 + 1  # 49 3x3 convs, 2 projections, 1 Dense
    zero = sum(k.size - int(np.count_nonzero(k)) for k in kernels) / sum(k.size for k in kernels)
    assert zero == pytest.approx(RESNET_ZERO_FRACTION_MEASURED[name], abs=0.005)
    assert zero == pytest.approx(RESNET_NOMINAL_P[name], abs=0.02)

    assert _accuracy(model, x, y) == pytest.approx(RESNET_ACCURACY_MEASURED[name],
                                                   abs=MEASURED_TOL)
