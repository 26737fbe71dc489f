"""Keras callbacks that go with LaPerm (Section 4 and 5.3)."""

from __future__ import annotations

from typing import Callable, Iterable

import keras
import numpy as np
from keras import ops

from laperm.method import ops as lops
from laperm.method.optimizer import find_laperm


def _laperm_of(model):
    optimizer = getattr(model, "optimizer", None)
    found = find_laperm(optimizer, required=False)
    if found is None:
        raise ValueError(
            "This callback needs a model compiled with a laperm.LaPerm "
            f"optimizer; found {type(optimizer).__name__}."
        )
    return found


class SyncPeriodScheduler(keras.callbacks.Callback):
    """Set LaPerm's sync period k from a function of the epoch.

    The Keras way (like ``LearningRateScheduler``) for the paper's epoch-based
    k schedules.  k is stored in an optimizer variable, so changing it does not
    retrace the train step.

    Args:
        schedule: ``schedule(epoch) -> int`` (epoch counted from 0), an integer
            (Python or NumPy) from 1 to ``2**31 - 1``.
        verbose: print the new k when it changes.

    Raises:
        ValueError: at the start of an epoch whose ``schedule(epoch)`` is not
            such an integer (a float, a string or a bool is refused, not
            rounded or converted).
    """

    def __init__(self, schedule: Callable[[int], int], verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def sync_period_at(self, epoch: int) -> int:
        """``schedule(epoch)``, checked to be a valid sync period."""
        k = self.schedule(epoch)
        if (isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer))
                or not 1 <= k < 2**31):
            raise ValueError(
                f"SyncPeriodScheduler: schedule({epoch}) returned {k!r} "
                f"({type(k).__name__}); the sync period k must be an integer from 1 to "
                f"2**31 - 1 (e.g. return int(...) or round(...) for a computed value)."
            )
        return int(k)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _laperm_of(self.model)
        old = optimizer.sync_period
        optimizer.sync_period = self.sync_period_at(epoch)
        if self.verbose and old != optimizer.sync_period:
            print(f"\nEpoch {epoch + 1}: LaPerm sync period k = {optimizer.sync_period}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sync_period"] = _laperm_of(self.model).sync_period


class PermutationRecorder(keras.callbacks.Callback):
    """Record the ranks of chosen weight vectors right after each sync.

    Nothing is added to the compiled train step: the callback looks at the
    optimizer's sync counter after each batch and, when a sync happened, stores
    the stable ranks of the chosen variables (NumPy ``int32``, row view).
    Because the weights are synchronised at that moment, ranks determine the
    permutation of theta_0 exactly (see :mod:`laperm.analysis.profiles`).

    With ``steps_per_execution > 1`` batches end only every that many steps,
    so choose k as a multiple of it to see every sync.

    Args:
        variables: variable paths (substrings) or objects to record; default:
            every permuted variable.
        vectors: optional indices of the vectors (output units) to keep per
            variable, to bound memory.
        max_records: stop recording after this many syncs.

    Attributes:
        records: ``{variable path: [ranks at sync 1, ranks at sync 2, ...]}``.
        steps: the optimizer step of each record.
    """

    def __init__(
        self,
        variables: Iterable | None = None,
        vectors: Iterable[int] | None = None,
        max_records: int = 10_000,
        record_initial: bool = True,
    ):
        super().__init__()
        self.variables = None if variables is None else list(variables)
        self.vectors = None if vectors is None else list(vectors)
        self.max_records = int(max_records)
        self.record_initial = record_initial
        self.records: dict[str, list[np.ndarray]] = {}
        self.steps: list[int] = []
        self._last_count = None

    def _chosen(self, optimizer):
        chosen = []
        for v in optimizer.permuted_variables:
            if self.variables is None or any(
                (sel is v) if not isinstance(sel, str) else (sel in v.path)
                for sel in self.variables
            ):
                chosen.append(v)
        return chosen

    def _record(self, optimizer, step):
        for v in self._chosen(optimizer):
            ranks = ops.convert_to_numpy(lops.vector_ranks(v.value)).astype(np.int32)
            if self.vectors is not None:
                ranks = ranks[self.vectors]
            self.records.setdefault(v.path, []).append(ranks)
        self.steps.append(int(step))

    def on_train_begin(self, logs=None):
        optimizer = _laperm_of(self.model)
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self._last_count = int(ops.convert_to_numpy(optimizer.sync_count))
        if self.record_initial and not self.steps:
            self._record(optimizer, ops.convert_to_numpy(optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        optimizer = _laperm_of(self.model)
        count = int(ops.convert_to_numpy(optimizer.sync_count))
        if count != self._last_count and len(self.steps) < self.max_records:
            self._record(optimizer, ops.convert_to_numpy(optimizer.iterations))
        self._last_count = count


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop training at the first sync that met NaN or inf weights.

    Inside the compiled train step such a sync is skipped and recorded (on
    every backend); this callback reads the record after every batch and
    raises :class:`laperm.NonFiniteWeightsError` naming the variable and the
    step.  Without it the error is raised at the end of ``fit``.
    """

    def on_train_batch_end(self, batch, logs=None):
        _laperm_of(self.model).check_finite_sync()


class SyncProbe(keras.callbacks.Callback):
    """After every training step, the accuracy on a fixed probe set of the inner weights and
    of the weights a sync would give now (Section 5.3: the saw-tooth).

    The synchronised weights are measured inside ``optimizer.synchronised()``,
    which puts them in the model for the measurement only; right after a sync
    both are the same network.

    Attributes:
        rows: one dict per step and kind of weights: ``step``, ``accuracy`` and
            ``weights`` (:attr:`INNER` or :attr:`SYNCED`).
    """

    INNER = "inner weights (Adam's current state)"
    SYNCED = "synchronised (a permutation of θ0)"

    def __init__(self, x_probe, y_probe):
        super().__init__()
        self.x_probe, self.y_probe = x_probe, np.asarray(y_probe).ravel()
        self.rows = []

    def accuracy(self) -> float:
        """The model's accuracy on the probe set, now."""
        probs = keras.ops.convert_to_numpy(self.model(self.x_probe, training=False))
        return float(np.mean(probs.argmax(axis=-1) == self.y_probe))

    def on_train_batch_end(self, batch, logs=None):
        opt = _laperm_of(self.model)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.rows.append(dict(step=step, accuracy=self.accuracy(), weights=self.INNER))
        with opt.synchronised():
            self.rows.append(dict(step=step, accuracy=self.accuracy(), weights=self.SYNCED))
