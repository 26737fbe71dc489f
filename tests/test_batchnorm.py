"""BatchNorm statistics re-estimated for the synchronised network (laperm.method.batchnorm)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import laperm
from laperm.method.batchnorm import batchnorm_layers, recalibrate_batchnorm, recalibrated_batchnorm


def bn_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3, activation="softmax"),
    ])


def blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)).astype("float32") + 3.0 * y[:, None]  # shifted inputs
    return x, y


def values(variables):
    return [ops.convert_to_numpy(v.value).copy() for v in variables]


def moving(model):
    return values([v for layer in batchnorm_layers(model)
                   for v in (layer.moving_mean, layer.moving_variance)])


def trained():
    model = bn_model()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.01), sync_period=5)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = blobs()
    model.fit(x, y, batch_size=50, epochs=8, verbose=0)
    return model, opt, x, y


def test_deliberately_wrong_statistics_recover():
    model, opt, x, y = trained()
    with opt.synchronised():
        recalibrate_batchnorm(model, x, batches=12)
        good = model.evaluate(x, y, verbose=0)[1]
        for layer in batchnorm_layers(model):
            layer.moving_mean.assign(ops.ones_like(layer.moving_mean.value) * 50.0)
            layer.moving_variance.assign(ops.ones_like(layer.moving_variance.value) * 1e-4)
        broken = model.evaluate(x, y, verbose=0)[1]
        assert recalibrate_batchnorm(model, x, batches=12) == 12
        recovered = model.evaluate(x, y, verbose=0)[1]
    assert broken < good - 0.2
    assert recovered == pytest.approx(good, abs=1e-6)


def test_statistics_are_the_exact_mean_over_batches():
    model, _, x, _ = trained()
    recalibrate_batchnorm(model, x, batches=6, batch_size=50, seed=3)
    first_bn = batchnorm_layers(model)[0]
    from laperm.method.batchnorm import _batches

    seen = [model.layers[0](chunk) for chunk in _batches(x, 6, 50, 3)]
    expected = np.mean([ops.convert_to_numpy(ops.mean(s, axis=0)) for s in seen], axis=0)
    np.testing.assert_allclose(ops.convert_to_numpy(first_bn.moving_mean), expected, rtol=1e-5,
                               atol=1e-5)


def test_only_the_moving_statistics_change_and_the_invariant_holds():
    model, opt, x, _ = trained()
    with opt.synchronised():
        others = [v for v in model.variables if "moving_" not in v.name]
        before = values(others)
        optimizer_state = values(opt.variables)
        stats_before = moving(model)
        recalibrate_batchnorm(model, x, batches=4)
        for a, b in zip(values(others), before):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(values(opt.variables), optimizer_state):
            np.testing.assert_array_equal(a, b)
        assert any(not np.array_equal(a, b) for a, b in zip(moving(model), stats_before))
        for v, s in zip(opt.permuted_variables, opt.sorted_initial_values):  # a permutation of theta_0
            np.testing.assert_array_equal(
                np.sort(ops.convert_to_numpy(laperm.method.ops.to_rows(v.value)), -1),
                ops.convert_to_numpy(s.value))


def test_deterministic_given_a_seed():
    model, _, x, _ = trained()
    saved = moving(model)
    recalibrate_batchnorm(model, x, batches=5, seed=1)
    first = moving(model)
    recalibrate_batchnorm(model, x, batches=5, seed=1)
    for a, b in zip(moving(model), first):
        np.testing.assert_array_equal(a, b)
    recalibrate_batchnorm(model, x, batches=5, seed=2)
    assert any(not np.array_equal(a, b) for a, b in zip(moving(model), first))
    del saved


def test_the_context_restores_the_statistics():
    model, _, x, _ = trained()
    saved = moving(model)
    with recalibrated_batchnorm(model, x, batches=4) as used:
        assert used == 4
        assert any(not np.array_equal(a, b) for a, b in zip(moving(model), saved))
    for a, b in zip(moving(model), saved):
        np.testing.assert_array_equal(a, b)
    for layer in batchnorm_layers(model):
        assert layer.momentum == 0.99


def test_a_model_without_batchnorm_is_untouched():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    before = values(model.variables)
    assert recalibrate_batchnorm(model, np.zeros((100, 8), "float32")) == 0
    for a, b in zip(values(model.variables), before):
        np.testing.assert_array_equal(a, b)


def test_too_little_data_and_bad_arguments_are_refused():
    model, _, x, _ = trained()
    with pytest.raises(ValueError, match="at least one batch of 50 images; received 10"):
        recalibrate_batchnorm(model, x[:10])
    with pytest.raises(ValueError, match="received 0"):
        recalibrate_batchnorm(model, x[:0])
    with pytest.raises(ValueError, match="`batches` must be a positive integer"):
        recalibrate_batchnorm(model, x, batches=0)
    assert recalibrate_batchnorm(model, x[:120], batches=200) == 2  # whole batches it has
    unbuilt = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="built model"):
        recalibrate_batchnorm(unbuilt, x)


@pytest.mark.parametrize("kernels", ["keras", "fused"])
def test_the_exact_mean_under_mixed_bfloat16(kernels):
    """Under the bfloat16 policy too: the averaging weight i / (i + 1) must stay float32
    (read in bfloat16 it is rounded, and 200 batches get weights from 0.0035 to 0.0069)."""
    from laperm.method.batchnorm import _batches
    from laperm.method.fused import fuse_model

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
        if kernels == "fused":
            model = fuse_model(model)
        # integers below 256 are exact in bfloat16: the layer sees the images as they are
        x = np.random.default_rng(0).integers(0, 200, size=(10000, 4)).astype("float32")
        assert recalibrate_batchnorm(model, x, batches=200, batch_size=50, seed=1) == 200
        expected = np.mean([chunk.astype("float64").mean(axis=0)
                            for chunk in _batches(x, 200, 50, 1)], axis=0)
        np.testing.assert_allclose(
            ops.convert_to_numpy(batchnorm_layers(model)[0].moving_mean), expected, rtol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy(previous)
