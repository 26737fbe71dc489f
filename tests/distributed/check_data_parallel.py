"""Run LaPerm data-parallel on two simulated CPU devices; print one JSON line.

Usage: python check_data_parallel.py {tensorflow,jax} OUT_DIR

Started in a fresh process by tests/test_distributed.py: the two devices must
exist before the backend starts (TensorFlow: two logical CPU devices; JAX:
``XLA_FLAGS=--xla_force_host_platform_device_count=2``, set by the caller).

For a model without BatchNorm (a small conv net), for the paper's Conv2
(with BatchNorm, on 16x16 inputs; under TensorFlow with the fused kernels of
:mod:`laperm.method.fused`) and for
ResNet8 (the smallest of the paper's ResNet family: BatchNorm, identity and projection
shortcuts) it trains 9 steps at k = 3 on two devices, and for the model without
BatchNorm on one device too, from the same theta_0 on the same batches, and reports:
whether one device and two build the same theta_0, the weights' largest difference
(without BatchNorm; with it each replica normalises its half of the batch, so
the runs differ by design and the one-device model is only built, not trained),
whether every permuted variable is a permutation
of theta_0 after the run, the syncs and steps counted, the saved and reloaded
model's optimizer state, and what BatchNorm re-estimation changed.
"""

from __future__ import annotations

import json
import os
import sys

backend, out_dir = sys.argv[1], sys.argv[2]
os.environ["KERAS_BACKEND"] = backend
if backend == "tensorflow":
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import laperm  # noqa: E402
from laperm import models
from laperm.analysis import profiles  # noqa: E402
from laperm.method.batchnorm import batchnorm_layers, recalibrate_batchnorm  # noqa: E402
from laperm.method.fused import fuse_model, make_adam  # noqa: E402

STEPS, BATCH, K = 9, 16, 3
# Conv2 on 16x16 images: its layers as in the paper (BatchNorm, dropout, Dense), a Dense
# kernel of 1024x256 instead of 16384x256; ResNet8 needs 32x32 (its 8x8 average pooling).
SMALL = (16, 16, 3)


def small_net():
    return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])


def data(shape):
    rng = np.random.default_rng(0)
    return rng.random((STEPS * BATCH, *shape)).astype("float32"), rng.integers(0, 10, STEPS * BATCH)


# One strategy for the whole process: several MirroredStrategy objects in one
# process reuse collective keys and abort each other's all-reduces.
STRATEGY = None
if backend == "tensorflow":
    STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def scope(parallel):
    if not parallel:
        return keras.name_scope("one")  # any context manager
    if backend == "tensorflow":
        return STRATEGY.scope()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    return keras.name_scope("two")


def train(build, shape, parallel, kernels="keras", fit=True):
    if backend == "jax":
        keras.distribution.set_distribution(None)
    keras.utils.set_random_seed(0)
    with scope(parallel):
        model = build()
        if kernels == "fused":
            model = fuse_model(model)
        opt = laperm.LaPerm(make_adam(1e-3, kernels), sync_period=K)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    theta0 = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    x, y = data(shape)
    if fit:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model, opt, theta0, (x, y)


def numpy(v):
    return np.asarray(keras.ops.convert_to_numpy(v))


def report(name, build, shape, kernels="keras", compare_weights=False):
    """``compare_weights``: also train on one device and report the weights' largest
    difference (else the one-device model is only built, for its theta_0)."""
    one, _, theta_one, _ = train(build, shape, parallel=False, kernels=kernels,
                                 fit=compare_weights)
    two, opt, theta0, (x, y) = train(build, shape, parallel=True, kernels=kernels)
    permuted = {id(v) for v in opt.permuted_variables}
    out = {
        "same_theta0": all(np.array_equal(a, b) for a, b in zip(theta_one, theta0)),
        "permutations": all(profiles.is_permutation_of(t, numpy(v))
                            for t, v in zip(theta0, two.trainable_variables) if id(v) in permuted),
        "syncs": int(numpy(opt.sync_count)), "steps": int(numpy(opt.iterations)),
    }
    if compare_weights:
        out["max_weight_diff"] = max(
            float(np.abs(numpy(a) - numpy(b)).max())
            for a, b in zip(one.trainable_variables, two.trainable_variables))
    path = os.path.join(out_dir, f"{name}.keras")
    two.save(path)
    with scope(True):
        loaded = keras.models.load_model(path)
    out["reloaded_steps"] = int(numpy(loaded.optimizer.iterations))
    out["reloaded_weights_equal"] = all(np.array_equal(numpy(a), numpy(b))
                                        for a, b in zip(two.weights, loaded.weights))
    loaded.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)  # resume under the strategy
    out["resumed_syncs"] = int(numpy(laperm.find_laperm(loaded).sync_count))
    if batchnorm_layers(two):
        kernels = [numpy(v).copy() for v in two.trainable_variables]
        before = [numpy(v).copy() for layer in batchnorm_layers(two)
                  for v in (layer.moving_mean, layer.moving_variance)]
        used = recalibrate_batchnorm(two, x, batches=4, batch_size=BATCH)
        after = [numpy(v) for layer in batchnorm_layers(two)
                 for v in (layer.moving_mean, layer.moving_variance)]
        out["bn_batches"] = used
        out["bn_statistics_changed"] = any(not np.allclose(a, b) for a, b in zip(before, after))
        out["bn_trainables_unchanged"] = all(np.array_equal(a, numpy(b))
                                             for a, b in zip(kernels, two.trainable_variables))
    return out


results = {"devices": len(keras.distribution.list_devices("cpu")) if backend == "jax" else 2,
           "small_net": report("small_net", small_net, (12, 12, 3), compare_weights=True)}
# Conv2 once per backend: under TensorFlow with its fused kernels (the Keras kernels of BatchNorm
# and Adam under the strategy are ResNet8's below); under JAX, where fused kernels compute as
# Keras's, with the Keras kernels.
if backend == "tensorflow":
    results["conv2_fused"] = report("conv2_fused", lambda: models.get("conv2", input_shape=SMALL),
                                    SMALL, kernels="fused")
else:
    results["conv2"] = report("conv2", lambda: models.get("conv2", input_shape=SMALL), SMALL)
results["resnet8"] = report("resnet8", lambda: models.get("resnet8"), (32, 32, 3))
print("RESULT " + json.dumps(results))
