"""The backend-neutral input pipeline: in-memory images as a ``keras.utils.PyDataset``.

:func:`laperm.data.make_dataset` returns a :class:`ArrayBatches` under the JAX,
torch (or any non-TensorFlow) Keras backend, and a ``tf.data.Dataset`` under
TensorFlow.  It needs neither TensorFlow nor any backend-specific code: the
batches are NumPy arrays gathered, preprocessed and cast on the host, and the
augmentation is the same Keras preprocessing layers as the ``tf.data``
pipeline's (:func:`laperm.data.augmentation_layers`), run eagerly on the
current backend.

Seeding follows the ``tf.data`` pipeline's rules: the order of epoch ``e`` is
:func:`laperm.data.epoch_order` ``(n, seed, e)`` (the same permutation as the
``tf.data`` pipeline's) and every random draw of batch ``i`` comes from a seed
that is a function of ``(seed, e, i, layer)`` only (:func:`batch_seed`), so a
run killed and resumed in a new process sees the batches of the uninterrupted
run.  The random draws themselves come from the backend's generator: under
another backend the augmented images differ from the ``tf.data`` pipeline's
(same transformations, same ranges, other draws); without augmentation the
batches are bit for bit those of the ``tf.data`` pipeline.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Sequence

import keras
import numpy as np

__all__ = ["ArrayBatches", "augment_batch", "batch_seed"]

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
        from laperm.data import epoch_order

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
