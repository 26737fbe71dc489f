"""BatchNorm statistics of a synchronised network (Section 4, evaluation).

After a sync the kernels of a LaPerm network are a new permutation of theta_0,
but the BatchNorm moving mean and variance still describe the activations of
the *unsynchronised* weights of the last training steps.  Judging the
synchronised network with those statistics is not judging that network.
:func:`recalibrate_batchnorm` re-estimates them for the weights the model
holds now; :func:`recalibrated_batchnorm` does it inside a context that puts
the old statistics back on exit::

    with optimizer.synchronised(), laperm.recalibrated_batchnorm(model, x_train):
        model.evaluate(x_test, y_test)

The estimate is the exact average of the per-batch statistics over
``batches`` batches of ``batch_size`` training images, as the network sees
them in training mode (dropout active, as in training; earlier BatchNorm
layers normalise with the batch statistics).  Only the BatchNorm moving mean
and moving variance change: no trainable weight, no optimizer state.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from laperm.run.backends import global_generator_seeded, seed_generator_states

#: Default number of batches and batch size of the re-estimation.
DEFAULT_BATCHES = 200
DEFAULT_BATCH_SIZE = 50


def batchnorm_layers(model) -> list:
    """Every ``keras.layers.BatchNormalization`` inside ``model`` (nested too)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _moving(layers) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v.value).copy()
            for layer in layers for v in (layer.moving_mean, layer.moving_variance)]


def _restore(layers, values) -> None:
    it = iter(values)
    for layer in layers:
        layer.moving_mean.assign(next(it))
        layer.moving_variance.assign(next(it))


def batch_rows(n_images: int, batches: int, batch_size: int, seed: int) -> np.ndarray:
    """Which images form each re-estimation batch: ``(n_batches, batch_size)`` indices.

    A function of ``seed`` only; each row is sorted.  With fewer than
    ``batches * batch_size`` images, every image is used, in as many whole
    batches as they give.
    """
    if n_images < batch_size:
        raise ValueError(
            f"BatchNorm re-estimation needs at least one batch of {batch_size} images; "
            f"received {n_images}."
        )
    need = batches * batch_size
    rng = np.random.default_rng([int(seed), 0xB0])
    if n_images >= need:
        order = rng.choice(n_images, need, replace=False)
    else:
        order = rng.permutation(n_images)[: n_images // batch_size * batch_size]
    return np.sort(order.reshape(-1, batch_size), axis=1)


def _batches(images, batches: int, batch_size: int, seed: int):
    images = np.asarray(images)
    return [images[rows] for rows in batch_rows(len(images), batches, batch_size, seed)]


def _forward_fn(model):
    """``model(x, training=True)``, compiled where the backend allows it."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x, training=True), reduce_retracing=True)
    return lambda x: model(x, training=True)


def recalibrate_batchnorm(model, images, batches: int = DEFAULT_BATCHES,
                          batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0) -> int:
    """Re-estimate every BatchNorm layer's moving statistics for the current weights.

    Args:
        model: a built Keras model.  A model without BatchNorm is left
            untouched (a documented no-op).
        images: preprocessed training images (a NumPy array, first axis =
            samples), already in the model's input format; never test images.
        batches: number of batches averaged (default 200).
        batch_size: images per batch (default 50, the CIFAR batch size).
        seed: chooses which training images form the batches (the same seed
            gives the same statistics).

    Returns:
        The number of batches used (0 for a model without BatchNorm).

    Only the BatchNorm moving statistics change; the random layers' seed
    states are restored, so the same weights, images and seed always give
    the same statistics.

    Raises:
        ValueError: fewer than ``batch_size`` images, or ``batches`` /
            ``batch_size`` not positive integers, or an unbuilt model.
    """
    for name, value in (("batches", batches), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    if not model.built:
        raise ValueError("recalibrate_batchnorm needs a built model (call it once first).")
    chunks = _batches(images, int(batches), int(batch_size), seed)
    momenta = [layer.momentum for layer in layers]
    # Dropout draws from the model's seed generators: seed them, and put their
    # states back afterwards, so that the estimate is a function of `seed` and
    # training after it draws what it would have drawn without it.
    seed_states = seed_generator_states(model)
    saved_states = [keras.ops.convert_to_numpy(v.value).copy() for v in seed_states]
    for i, v in enumerate(seed_states):
        v.assign(np.array([int(seed) * 7919 + i, 1], dtype=saved_states[i].dtype))
    # autocast=False: under a mixed precision policy a layer would otherwise read
    # the weight in bfloat16 (i / (i + 1) rounded, so not the exact mean).
    counter = keras.Variable(0.0, dtype="float32", trainable=False, autocast=False,
                             name="bn_average_weight")
    forward = _forward_fn(model)
    try:
        for layer in layers:
            # Keras BN: moving = moving * momentum + batch * (1 - momentum).  A
            # momentum of i / (i + 1) at batch i makes `moving` the exact mean of
            # the batch statistics seen so far (batch 0 replaces the stale value).
            object.__setattr__(layer, "momentum", counter)
        # (torch: unseeded dropout draws from torch's generator, seeded here too)
        with global_generator_seeded([int(seed), 0xB0]):
            for i, chunk in enumerate(chunks):
                counter.assign(i / (i + 1))
                forward(keras.ops.convert_to_tensor(chunk, dtype="float32"))
    finally:
        for layer, momentum in zip(layers, momenta):
            object.__setattr__(layer, "momentum", momentum)
        for v, state in zip(seed_states, saved_states):
            v.assign(state)
    return len(chunks)


@contextlib.contextmanager
def recalibrated_batchnorm(model, images, batches: int = DEFAULT_BATCHES,
                           batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0):
    """:func:`recalibrate_batchnorm` inside a context; the old statistics come back on exit.

    Yields:
        The number of batches used (0 for a model without BatchNorm).
    """
    layers = batchnorm_layers(model)
    saved = _moving(layers)
    try:
        yield recalibrate_batchnorm(model, images, batches, batch_size, seed)
    finally:
        _restore(layers, saved)
