"""The fused BatchNorm and Adam kernels compute what the Keras layers compute."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import laperm
from laperm.analysis import profiles
from laperm.method import fused
from laperm.config import KERNELS
from laperm.paper import EXPERIMENTS


def _bn_net():
    """Conv - BN - Dense - BN - Dense: both BatchNorm shapes (4-D and 2-D), no dropout."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12, activation="relu")(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


def _bn_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, (n, 8, 8, 3)).astype("float32"), rng.integers(0, 4, n)


def test_fuse_model_swaps_every_batchnorm_and_keeps_the_weights():
    keras.utils.set_random_seed(0)
    model = _bn_net()
    fast = fused.fuse_model(model)
    assert [type(layer) for layer in _bn_layers(fast)] == [fused.FusedBatchNormalization] * 2
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), fast.get_weights()))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert fused.fuse_model(plain) is plain  # nothing to fuse: the model itself


def test_fused_batchnorm_matches_keras_in_training_and_inference():
    keras.utils.set_random_seed(0)
    model = _bn_net()
    fast = fused.fuse_model(model)
    x, _ = _images()
    for _ in range(3):  # three training-mode calls update the moving statistics
        out_keras, out_fused = model(x, training=True), fast(x, training=True)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out_fused),
                                   keras.ops.convert_to_numpy(out_keras), atol=1e-5)
    for a, b in zip(_bn_layers(model), _bn_layers(fast)):
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(getattr(b, name)),
                                       keras.ops.convert_to_numpy(getattr(a, name)),
                                       rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x, training=False)),
                               keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-5)


def _train(kernels, steps=25, k=5):
    keras.utils.set_random_seed(1)
    model = _bn_net()
    if kernels == "fused":
        model = fused.fuse_model(model)
    optimizer = laperm.LaPerm(fused.make_adam(1e-2, kernels), sync_period=k)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    theta0 = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    x, y = _images(steps * 8, seed=2)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model, optimizer, theta0


def test_fused_training_follows_the_keras_training_and_keeps_the_invariant():
    reference, _, _ = _train("keras")
    model, optimizer, theta0 = _train("fused")
    assert type(optimizer.inner_optimizer) is fused.FusedAdam
    permuted = {id(v) for v in optimizer.permuted_variables}
    for t0, v in zip(theta0, model.trainable_variables):
        if id(v) in permuted:  # LaPerm's invariant: still a permutation of theta_0
            assert profiles.is_permutation_of(t0, keras.ops.convert_to_numpy(v))
    # 25 steps and 5 syncs later the weights are the Keras run's, up to float rounding
    # (a rounding difference can swap the ranks of two nearly equal weights: compare
    # the bulk, not every position)
    for a, b in zip(reference.get_weights(), model.get_weights()):
        close = np.isclose(a, b, rtol=1e-4, atol=1e-5)
        assert close.mean() > 0.99


def test_fused_adam_takes_keras_adam_steps():
    keras.utils.set_random_seed(3)
    start = np.random.default_rng(3).normal(size=(50,)).astype("float32")
    grads = [np.random.default_rng(s).normal(size=(50,)).astype("float32") for s in range(10)]
    values = {}
    for cls in (keras.optimizers.Adam, fused.FusedAdam):
        var = keras.Variable(start.copy())
        opt = cls(1e-2)
        for g in grads:
            opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        values[cls] = keras.ops.convert_to_numpy(var)
    np.testing.assert_allclose(values[fused.FusedAdam], values[keras.optimizers.Adam],
                               rtol=1e-5, atol=1e-7)


def test_fused_model_saves_and_loads_with_its_kernels(tmp_path):
    model, _, _ = _train("fused", steps=10)
    path = tmp_path / "fused.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in _bn_layers(loaded)] == [fused.FusedBatchNormalization] * 2
    assert type(laperm.find_laperm(loaded).inner_optimizer) is fused.FusedAdam
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))


def test_fused_batchnorm_under_mixed_bfloat16_keeps_float32_variables():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        x, _ = _images(8)
        x = keras.ops.cast(x, "bfloat16")
        layer, reference = fused.FusedBatchNormalization(), keras.layers.BatchNormalization()
        out, expected = layer(x, training=True), reference(x, training=True)
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
        assert {v.dtype for v in layer.weights} == {"float32"}
        # statistics in float32 (as Keras does), outputs rounded to bfloat16 (8 bits)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")),
                                   keras.ops.convert_to_numpy(keras.ops.cast(expected, "float32")),
                                   atol=2e-2)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                                   keras.ops.convert_to_numpy(reference.moving_variance),
                                   rtol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_kernels_is_a_config_choice_outside_the_hash_at_its_default():
    conv2 = EXPERIMENTS["conv2"]
    assert conv2.kernels == "keras" and KERNELS == ("keras", "fused")
    assert conv2.hash == "fab1877d7d49"  # the committed Conv2 records' hash
    assert conv2.replace(kernels="fused").hash != conv2.hash
    with pytest.raises(ValueError, match="Unknown kernels 'cuda'; valid: keras, fused"):
        conv2.replace(kernels="cuda")
    with pytest.raises(ValueError, match="valid: keras, fused"):
        fused.make_adam(1e-3, "xla")


@pytest.mark.slow  # a Conv2 run end to end, reloaded (~11 s)
def test_an_experiment_with_fused_kernels_records_and_reloads_them(tmp_path, small_data_dir):
    from laperm.paper import paper_config
    from laperm.experiment import run
    from laperm.reproduce import run_name

    cfg = paper_config("conv2", epochs=1, train_fraction=0.4, bn_batches=2,  # 2 steps of 50
                       validation_size=200, kernels="fused")
    assert run_name(cfg).endswith("_fused")
    history, result = run(cfg, tmp_path / "run", data_dir=small_data_dir, progress=False)
    assert result["kernels"] == "fused" and len(history) == 1
    assert np.isfinite(result["final_test_accuracy"])
    model = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert {type(layer) for layer in _bn_layers(model)} == {fused.FusedBatchNormalization}
    assert type(laperm.find_laperm(model).inner_optimizer) is fused.FusedAdam


@pytest.mark.parametrize("size", [1, 2, 3])
def test_patch_conv_matches_keras_conv_and_its_gradients(size):
    """2x2 and 1x1 outputs take the matrix product, 3x3 (9 positions) Keras's convolution."""
    keras.utils.set_random_seed(4)
    conv = keras.layers.Conv2D(5, 3, padding="same", activation="relu")
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(4).normal(size=(6, size, size, 7)).astype("float32"))
    expected = conv(x)
    patch = fused.PatchConv2D.from_config(conv.get_config())
    patch.build(x.shape)
    patch.set_weights(conv.get_weights())
    assert patch._patchable(x) == (size * size <= fused.PATCH_POSITIONS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(patch(x)),
                               keras.ops.convert_to_numpy(expected), atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        grads = []
        for layer in (conv, patch):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) ** 2)
            grads.append(tape.gradient(loss, [x, layer.kernel]))
        for a, b in zip(*grads):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_fuse_model_takes_conv13s_small_layers_as_patch_products():
    from laperm import models

    model = fused.fuse_model(models.get("conv13"))
    patched = [layer.name for layer in model.layers if isinstance(layer, fused.PatchConv2D)
               and layer._patchable(layer.input)]
    assert len(patched) == 3  # the three 2x2 layers; the others stay convolutions


def test_batchnorm_re_estimation_of_a_fused_model_under_mixed_bfloat16():
    """The re-estimation sets momentum to a variable, read as bfloat16 under the policy."""
    from laperm.method.batchnorm import recalibrate_batchnorm

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = fused.fuse_model(_bn_net())
        x, _ = _images(64)
        before = [keras.ops.convert_to_numpy(layer.moving_variance).copy()
                  for layer in _bn_layers(model)]
        assert recalibrate_batchnorm(model, x, batches=4, batch_size=16) == 4
        after = [keras.ops.convert_to_numpy(layer.moving_variance) for layer in _bn_layers(model)]
        assert all(not np.allclose(a, b) for a, b in zip(before, after))
        assert {layer.moving_variance.dtype for layer in _bn_layers(model)} == {"float32"}
    finally:
        keras.mixed_precision.set_global_policy(previous)
