"""Input pipelines: :func:`make_dataset`, a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``.

:func:`make_dataset` puts the preprocessing and augmentation of
:mod:`laperm.data.preprocess` together in a ``tf.data`` pipeline under the
TensorFlow Keras backend, and in an :class:`ArrayBatches` under the JAX,
torch (or any non-TensorFlow) Keras backend.  The latter needs neither
TensorFlow nor any backend-specific code: the batches are NumPy arrays
gathered, preprocessed and cast on the host, and the augmentation is the same
Keras preprocessing layers as the ``tf.data`` pipeline's
(:func:`laperm.data.augmentation_layers`), run eagerly on the current backend.

Seeding follows the same rules in both: the order of epoch ``e`` is
:func:`epoch_order` ``(n, seed, e)`` and every random draw of batch ``i`` comes
from a seed that is a function of ``(seed, e, i, layer)`` only
(:func:`batch_seed`), so a run killed and resumed in a new process sees the
batches of the uninterrupted run.  The random draws themselves come from the
backend's generator: under another backend the augmented images differ from
the ``tf.data`` pipeline's (same transformations, same ranges, other draws);
without augmentation the batches are bit for bit those of the ``tf.data``
pipeline.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Sequence

import keras
import numpy as np

from laperm.data.datasets import _check_xy
from laperm.data.preprocess import (PREPROCESSORS, Preprocessor, augmentation_layers,
                                    make_preprocessor)

__all__ = ["PIPELINES", "ArrayBatches", "augment_batch", "batch_seed", "default_pipeline",
           "epoch_order", "make_dataset"]

#: Mixed into every augmentation seed, so that it never equals another seed of a run.
_AUGMENT_TAG = 0xA06


def batch_seed(seed: int, epoch: int, batch: int, step: int) -> int:
    """The seed of augmentation step ``step`` of batch ``batch`` of epoch ``epoch``.

    Args:
        seed: the run's seed.
        epoch: the epoch (counted from 0; for a one-pass dataset, the pass).
        batch: the batch index within the epoch.
        step: the index of the augmentation layer.

    Returns:
        An int in ``[0, 2**31)``, a function of the four arguments only.
    """
    words = [int(v) % 2**32 for v in (seed, epoch, batch, step)] + [_AUGMENT_TAG]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0] >> 1)


def augment_batch(steps: Sequence, images, seeds: Sequence[int]):
    """Apply augmentation steps to a batch, each drawing from its own seed.

    A Keras image preprocessing layer (``RandomRotation``, ``RandomZoom``,
    ``RandomTranslation``, ``RandomFlip``, ...) draws its transformation with
    ``get_random_transformation(..., seed=keras.random.SeedGenerator(s))`` and
    applies it with ``transform_images``: its draws are a function of ``s``,
    whatever the layer's own generator has drawn before.  Another Keras layer
    is called with ``training=True``; any other callable is called on the batch.

    Args:
        steps: layers or callables, applied in order.
        images: a batch ``(B, H, W, C)``.
        seeds: one int per step.

    Returns:
        The augmented batch as a NumPy array.
    """
    for step, seed in zip(steps, seeds):
        if hasattr(step, "get_random_transformation") and hasattr(step, "transform_images"):
            data = keras.ops.convert_to_tensor(images)
            transformation = step.get_random_transformation(
                data, training=True, seed=keras.random.SeedGenerator(int(seed)))
            images = step.transform_images(data, transformation, training=True)
        elif isinstance(step, keras.layers.Layer):
            images = step(images, training=True)
        else:
            images = step(images)
    return np.asarray(keras.ops.convert_to_numpy(images))


class ArrayBatches(keras.utils.PyDataset):
    """Batches ``(images, labels)`` of in-memory arrays, for ``fit``/``evaluate`` on any backend.

    Two modes, as :func:`laperm.data.make_dataset`:

    * ``epochs=None``: one pass over the data per Keras epoch; with
      ``shuffle`` the pass ``p`` (counted by :meth:`on_epoch_end`) visits the
      samples in the order ``epoch_order(n, seed, p)``.
    * ``epochs=E``: the ``E`` epochs ``first_epoch, ..., first_epoch + E - 1``
      one after the other, ``steps_per_epoch`` batches each (pass
      ``steps_per_epoch`` to ``fit``).  Batch ``k`` is batch ``k mod
      steps_per_epoch`` of epoch ``first_epoch + k // steps_per_epoch``; it
      is a function of ``(seed, epoch, batch)`` only, so a dataset rebuilt at
      epoch ``e`` (a resumed run) yields the batches of the one started at 0.

    Args:
        x: images ``(N, H, W, C)`` (uint8 or float), read-only is fine.
        y: int32 labels ``(N,)``.
        batch_size: images per batch.
        prepare: ``prepare(uint8 batch) -> float32 batch`` (preprocessing and
            the channel axis), a NumPy function.
        augment: augmentation steps for :func:`augment_batch`, or None.
        shuffle: visit each epoch in the order :func:`laperm.data.epoch_order`.
        seed: the run's seed (None: one drawn at random, not reproducible).
        drop_remainder: drop the last incomplete batch of each epoch.
        epochs: the number of epochs held (see above), or None.
        first_epoch: the first epoch held.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
            ``keras.utils.PyDataset``, for the one-pass mode only: with
            ``epochs``, ``fit`` reads the epochs from one iterator, which
            Keras's worker queue (stopped after every epoch) does not allow.
    """

    def __init__(self, x, y, batch_size: int, prepare: Callable, augment: Sequence | None = None,
                 *, shuffle: bool = False, seed: int | None = None, drop_remainder: bool = False,
                 epochs: int | None = None, first_epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        if epochs is not None and (self.workers > 1 or self.use_multiprocessing):
            raise ValueError("ArrayBatches(epochs=...) reads its epochs from one iterator: "
                             "use workers=1 and use_multiprocessing=False")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.prepare = prepare
        self.augment = list(augment or [])
        self.shuffle = bool(shuffle)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        self.seed = int(seed)
        self.epochs = None if epochs is None else int(epochs)
        self.first_epoch = int(first_epoch)
        n = len(x)
        self.steps_per_epoch = (n // self.batch_size if drop_remainder
                                else math.ceil(n / self.batch_size))
        self._pass = 0
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.steps_per_epoch * (self.epochs if self.epochs is not None else 1)

    def position(self, index: int) -> tuple[int, int]:
        """``(epoch, batch within the epoch)`` of batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        if self.epochs is None:
            return self._pass, index
        return self.first_epoch + index // self.steps_per_epoch, index % self.steps_per_epoch

    def _order(self, epoch: int) -> np.ndarray:
        """The order of ``epoch``, kept for the epoch being read (workers may ask at once)."""
        with self._lock:
            if epoch not in self._orders:
                self._orders = {epoch: epoch_order(len(self.x), self.seed, epoch, self.shuffle)}
            return self._orders[epoch]

    def __getitem__(self, index: int):
        epoch, batch = self.position(int(index))
        order = self._order(epoch)
        idx = order[batch * self.batch_size:(batch + 1) * self.batch_size]
        images = self.prepare(self.x[idx])
        if self.augment:
            seeds = [batch_seed(self.seed, epoch, batch, j) for j in range(len(self.augment))]
            images = augment_batch(self.augment, images, seeds)
        return images, self.y[idx]

    def on_epoch_end(self) -> None:
        """Keras calls this after every epoch: a one-pass dataset moves to its next pass."""
        if self.epochs is None:
            self._pass += 1


# --------------------------------------------------------------------------
# Input pipelines: tf.data (TensorFlow backend) or a PyDataset (any backend)
# --------------------------------------------------------------------------


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training samples.

    A function of ``(seed, epoch)`` only, so that a run resumed in a new
    process at epoch ``epoch`` sees exactly the batches the uninterrupted run
    would have seen.

    Args:
        n: number of samples.
        seed: the run's seed.
        epoch: the epoch, counted from 0.
        shuffle: False gives the identity order.

    Returns:
        An int64 permutation of ``range(n)``.
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch), 0x1A9E]).permutation(n)


class _StatelessSeeds:
    """Stands in for a layer's ``SeedGenerator`` while one batch is traced.

    Every draw gets its own stateless seed folded from ``base`` (a function of
    the run seed, the epoch and the batch index), so a random augmentation
    layer draws the same transformation for the same batch in any process, and
    the map that applies it may run in parallel.
    """

    def __init__(self, base):
        self._base = base
        self._count = 0

    def next(self, ordered=True):
        import tensorflow as tf

        del ordered
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._base, self._count)


def _with_stateless_seeds(layer, base):
    """A context that makes ``layer`` draw from :class:`_StatelessSeeds`."""
    import contextlib

    from keras.src.random.seed_generator import SeedGenerator

    seeds = _StatelessSeeds(base)
    # Pass Keras's isinstance check without creating a state variable.
    fake = SeedGenerator.__new__(type("StatelessSeedGenerator", (SeedGenerator,), {
        "__init__": lambda self: None, "next": lambda self, ordered=True: seeds.next()}))

    @contextlib.contextmanager
    def scope():
        saved = {k: layer.__dict__[k] for k in ("generator", "_backend_generators")
                 if k in layer.__dict__}
        object.__setattr__(layer, "generator", fake)
        object.__setattr__(layer, "_backend_generators", {"tensorflow": fake})
        try:
            yield
        finally:
            for k in ("generator", "_backend_generators"):
                if k in saved:
                    object.__setattr__(layer, k, saved[k])
                else:
                    layer.__dict__.pop(k, None)

    return scope()


#: The input pipelines of :func:`make_dataset`.
PIPELINES = ("tf.data", "pydataset")


def default_pipeline() -> str:
    """``"tf.data"`` under the TensorFlow Keras backend, ``"pydataset"`` under any other."""
    import keras

    return "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"


def _choose_pipeline(pipeline: str | None) -> str:
    if pipeline is None:
        pipeline = default_pipeline()
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}, or None "
                         "(tf.data under the TensorFlow backend, pydataset otherwise)")
    if pipeline == "tf.data":
        # Looked up at call time: tests replace laperm.run.backends.has_tensorflow.
        from laperm.run.backends import has_tensorflow

        if not has_tensorflow():
            raise ImportError("make_dataset(pipeline='tf.data') needs TensorFlow (pip install "
                              "tensorflow-cpu); pipeline='pydataset' works without it")
    return pipeline


def _array_batches(x, y, batch_size, preprocess, gray, aug_steps, shuffle, seed, drop_remainder,
                   epochs, first_epoch):
    """The ``"pydataset"`` pipeline (:class:`ArrayBatches`) of :func:`make_dataset`."""
    def prepare(images):
        if gray:
            images = images[..., None]
        if preprocess is None:
            return images.astype(np.float32)
        return np.asarray(preprocess(images), dtype=np.float32)

    return ArrayBatches(x, y, batch_size, prepare, aug_steps or None, shuffle=shuffle, seed=seed,
                        drop_remainder=drop_remainder, epochs=epochs,
                        first_epoch=int(first_epoch) if epochs is not None else 0)


def make_dataset(
    x,
    y,
    batch_size: int,
    preprocess: Preprocessor | Callable | str | None = None,
    augment=None,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    epochs: int | None = None,
    first_epoch: int = 0,
    pipeline: str | None = None,
):
    """Build a batched ``tf.data.Dataset`` (or a ``keras.utils.PyDataset``) of ``(images, labels)``.

    Pipeline: uint8 arrays in memory -> (shuffle) -> batch -> cast and
    preprocess per batch -> (augment per batch) -> prefetch.  Grayscale images
    get a channel axis, labels become int32 of shape ``(batch,)`` (sparse).
    Preprocessing runs before augmentation, like ``ImageDataGenerator.flow``
    on already-normalised arrays in the authors' notebooks.

    Two modes:

    * ``epochs=None``: one pass per iteration; with ``shuffle`` every
      iteration reshuffles (``tf.data`` seeded shuffle), and seeded Keras
      augmentation layers advance their own state.
    * ``epochs=E`` (what :func:`laperm.experiment.run` uses): the dataset
      holds the ``E`` epochs ``first_epoch, ..., first_epoch + E - 1`` one
      after the other (pass ``steps_per_epoch`` to ``fit``).  The order of
      epoch ``e`` (:func:`epoch_order`) and every random augmentation of its
      batch ``i`` are functions of ``(seed, e, i)`` only: a run resumed at
      epoch ``e`` in a new process trains on the same batches as the
      uninterrupted run, and the augmentation map runs in parallel.

    Args:
        x: images ``(N, H, W)`` or ``(N, H, W, C)`` (uint8 or float).
        y: integer labels ``(N,)`` or ``(N, 1)``.
        batch_size: batch size (50 for Conv/ResNet, 128 for F1/F2; Section 5).
        preprocess: a :class:`Preprocessor` from :func:`make_preprocessor`
            (fitted on the training set), any callable on batches, the name of
            a statistics-free preprocessing (``"scale01"``, ``"cifar_raw"``),
            or None (just cast to float32).
        augment: None, a preset name for :func:`augmentation_layers`, or a
            Keras layer / ``keras.Sequential`` of preprocessing layers,
            applied with ``training=True`` (a Sequential layer by layer, so
            it also works under the JAX or torch Keras backends).
        shuffle: reshuffle every epoch (full-size buffer).
        seed: seeds the shuffle and the augmentation.  With ``epochs=None``
            and a seed the augmentation map runs sequentially so that it is
            reproducible (Keras' seed generators are stateful); without one it
            runs in parallel (``AUTOTUNE``).  Required with ``epochs``.
        drop_remainder: drop the last incomplete batch.
        epochs: number of epochs the dataset holds (see above), or None.
        first_epoch: the first epoch it holds (counted from 0), to resume.
        pipeline: ``"tf.data"`` or ``"pydataset"`` (:class:`laperm.data.pipeline.ArrayBatches`,
            NumPy batches and the same Keras augmentation layers run eagerly;
            no TensorFlow needed), or None: ``"tf.data"`` under the TensorFlow
            Keras backend, ``"pydataset"`` under any other.  Both follow the
            seeding rules above; without augmentation they yield the same
            batches, with it the same transformations drawn from each
            backend's own generator (:mod:`laperm.data.pipeline`).

    Returns:
        A ``tf.data.Dataset`` (or an :class:`~laperm.data.pipeline.ArrayBatches`)
        yielding ``(float32 images (B, H, W, C), int32 labels (B,))``.

    Raises:
        ValueError: mismatched ``x``/``y``, bad ``batch_size``/``epochs``, a
            preprocessing name that needs training statistics, an unknown
            preset or pipeline.
        ImportError: ``pipeline="tf.data"`` without TensorFlow installed.
    """
    pipeline = _choose_pipeline(pipeline)
    x = np.asarray(x)
    y = np.asarray(y)
    _check_xy(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if epochs is not None:
        for what, value, low in (("epochs", epochs, 1), ("first_epoch", first_epoch, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
        if seed is None:
            raise ValueError("make_dataset(epochs=...) needs a seed: the order and "
                             "augmentation of every epoch are functions of (seed, epoch)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1); got {y.shape}")
    y = y.astype(np.int32)

    if isinstance(preprocess, str):
        if preprocess not in PREPROCESSORS:
            raise ValueError(
                f"unknown preprocessing {preprocess!r}; valid names: {', '.join(PREPROCESSORS)}"
            )
        if preprocess not in ("scale01", "cifar_raw"):
            raise ValueError(
                f"preprocessing {preprocess!r} needs training-set statistics: pass "
                f"make_preprocessor({preprocess!r}, x_train) instead of its name"
            )
        preprocess = make_preprocessor(preprocess, x[:1])
    gray = x.ndim == 3
    if isinstance(augment, str) or augment is None:
        aug_layer = augmentation_layers(augment, seed=seed) if augment is not None else None
    else:
        aug_layer = augment
    # Apply a Sequential's layers one by one: each Keras preprocessing layer
    # switches to TensorFlow ops inside tf.data whatever the Keras backend
    # (JAX, torch), but a Sequential wrapping them does not.
    aug_steps = list(getattr(aug_layer, "layers", None) or []) or (
        [aug_layer] if aug_layer is not None and not hasattr(aug_layer, "layers") else [])
    if pipeline == "pydataset":
        return _array_batches(x, y, int(batch_size), preprocess, gray, aug_steps, shuffle, seed,
                              drop_remainder, epochs, first_epoch)

    import tensorflow as tf

    def prep(images):
        if gray:
            images = images[..., None]
        if preprocess is None:
            return tf.cast(images, tf.float32)
        return tf.cast(preprocess(images), tf.float32)

    def augment_batch(images, base_seed=None):
        import keras

        for step in aug_steps:
            if not isinstance(step, keras.layers.Layer):
                images = step(images)
            elif base_seed is not None and hasattr(step, "generator"):
                with _with_stateless_seeds(step, base_seed):
                    images = step(images, training=True)
            else:
                images = step(images, training=True)
        return images

    if epochs is not None:
        return _epoch_indexed_dataset(
            x, y, int(batch_size), prep, augment_batch if aug_steps else None, shuffle,
            int(seed), int(epochs), int(first_epoch), drop_remainder)

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.map(lambda a, b: (prep(a), b), num_parallel_calls=tf.data.AUTOTUNE)
    if aug_steps:
        calls = None if seed is not None else tf.data.AUTOTUNE
        ds = ds.map(lambda a, b: (augment_batch(a), b), num_parallel_calls=calls)
    return ds.prefetch(tf.data.AUTOTUNE)


def _epoch_indexed_dataset(x, y, batch_size, prep, augment_batch, shuffle, seed, epochs,
                           first_epoch, drop_remainder):
    """``epochs`` epochs whose order and augmentation depend on (seed, epoch) only."""
    import tensorflow as tf

    n = len(x)
    epoch_ids = np.arange(first_epoch, first_epoch + epochs, dtype=np.int64)
    orders = np.stack([epoch_order(n, seed, int(e), shuffle) for e in epoch_ids])
    images_all = tf.constant(x)
    labels_all = tf.constant(y)

    def batches_of_epoch(epoch, order):
        batched = tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder)
        return batched.enumerate().map(lambda i, idx: (epoch, i, idx))

    def load(epoch, i, idx):
        images = prep(tf.gather(images_all, idx))
        labels = tf.gather(labels_all, idx)
        if augment_batch is not None:
            base = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + epoch, i])
            images = augment_batch(images, base)
        return images, labels

    ds = tf.data.Dataset.from_tensor_slices((epoch_ids, orders)).flat_map(batches_of_epoch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
