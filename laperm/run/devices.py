"""Data-parallel training on several devices (GPUs, or CPU devices for testing).

LaPerm needs nothing special on several devices: every replica holds the same
weights, the inner optimizer's update is the all-reduced one, and the sync is
a deterministic function of the weights, so all replicas reconnect alike
(tested with two simulated CPU devices under TensorFlow's
``MirroredStrategy`` and Keras's ``DataParallel`` on JAX).  This module picks
the strategy for the backend:

* TensorFlow: ``tf.distribute.MirroredStrategy`` over the first ``n`` GPUs
  (or, on a machine without GPUs, ``n`` logical CPU devices made by
  :func:`split_cpu`, which must run before TensorFlow starts);
* JAX: ``keras.distribution.DataParallel`` over the first ``n`` devices (on a
  CPU, start the process with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=n``);
* torch: not supported (one clear error).

The batch size stays the paper's: it is the global batch, split across the
replicas.  With BatchNorm each TensorFlow replica normalises its own share of
the batch, so a run on several devices is not bit for bit a one-device run.
"""

from __future__ import annotations

import contextlib


class DevicesError(ValueError):
    """The devices asked for cannot be had; the message says what to do."""


def split_cpu(n: int) -> bool:
    """Make ``n`` logical CPU devices for TensorFlow when it has no GPU (for testing).

    Must run before TensorFlow starts its runtime (before any tensor is made).

    Returns:
        Whether the CPU was split (False: GPUs exist, ``n`` < 2, another
        backend, or the runtime had already started).
    """
    import keras

    if n < 2 or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        return False
    return True


def _tensorflow_devices() -> list[str]:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


@contextlib.contextmanager
def data_parallel(devices: int | None):
    """Train and evaluate inside this context on ``devices`` devices (None or 1: as usual).

    Raises:
        DevicesError: fewer devices than asked for, or the torch backend.
    """
    if devices is None or devices == 1:
        yield None
        return
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise DevicesError(f"devices must be a positive whole number; got {devices!r}")
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        names = _tensorflow_devices()
        if len(names) < devices:
            raise DevicesError(
                f"{devices} devices asked for, TensorFlow sees {len(names)} ({', '.join(names)}); "
                "on a CPU, split it first with laperm.run.devices.split_cpu (python -m "
                "laperm.reproduce --devices does) before TensorFlow starts")
        strategy = tf.distribute.MirroredStrategy(names[:devices])
        with strategy.scope():
            yield strategy
    elif backend == "jax":
        found = keras.distribution.list_devices()
        if len(found) < devices:
            raise DevicesError(
                f"{devices} devices asked for, JAX sees {len(found)}; on a CPU, start the "
                f"process with XLA_FLAGS=--xla_force_host_platform_device_count={devices}")
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:devices]))
        try:
            yield keras.distribution.distribution()
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise DevicesError(f"training on several devices is supported with the tensorflow and "
                           f"jax backends, not {backend}")
