"""Schedules for the sync period k (Section 5.3).

The paper's k is a constant in each experiment, but its notebooks also vary k
with the epoch.  Two ways are offered:

* a :class:`SyncPeriodSchedule` evaluated *inside* the compiled train step as a
  function of the optimizer step (serialisable, like a Keras
  ``LearningRateSchedule``), e.g. :class:`PiecewiseSyncPeriod`;
* the callback :class:`laperm.method.callbacks.SyncPeriodScheduler`, which sets k
  from a Python function of the epoch (like ``LearningRateScheduler``).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="laperm")
class SyncPeriodSchedule:
    """Base class: ``schedule(step) -> k`` for the LaPerm sync period."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="laperm")
class PiecewiseSyncPeriod(SyncPeriodSchedule):
    """k constant on intervals of steps (or of epochs).

    Args:
        boundaries: increasing boundaries; ``values[i]`` applies while
            ``boundaries[i-1] <= t < boundaries[i]``.
        values: the positive integer k of each interval
            (``len(boundaries) + 1`` of them).
        steps_per_epoch: if given, ``boundaries`` are epochs, not steps.
    """

    def __init__(self, boundaries, values, steps_per_epoch=None):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "PiecewiseSyncPeriod needs len(values) == len(boundaries) + 1; "
                f"received {len(boundaries)} boundaries and {len(values)} values."
            )
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
            raise ValueError(f"Every sync period must be an integer >= 1; received {values}.")
        if sorted(boundaries) != boundaries:
            raise ValueError(f"`boundaries` must be increasing; received {boundaries}.")
        if steps_per_epoch is not None and int(steps_per_epoch) < 1:
            raise ValueError(f"`steps_per_epoch` must be >= 1; received {steps_per_epoch}.")
        self.boundaries = boundaries
        self.values = values
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step):
        t = ops.cast(step, "int32")
        if self.steps_per_epoch:
            t = ops.floor_divide(t, int(self.steps_per_epoch))
        index = ops.zeros((), "int32")
        for b in self.boundaries:
            index = index + ops.cast(ops.greater_equal(t, b), "int32")
        return ops.take(ops.convert_to_tensor(self.values, "int32"), index)

    def get_config(self):
        return {
            "boundaries": self.boundaries,
            "values": self.values,
            "steps_per_epoch": self.steps_per_epoch,
        }


def deserialize_sync_period(value, custom_objects=None):
    """An int stays an int; a serialised schedule becomes a schedule."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value, custom_objects=custom_objects)
    return value
