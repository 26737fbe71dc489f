"""laperm: Train-by-Reconnect (Qiu & Suda, NeurIPS 2020) for Keras 3.

Train a network by only permuting its random initial weights::

    import keras, laperm
    model.compile(optimizer=laperm.LaPerm(keras.optimizers.Adam(1e-3), sync_period=20),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

Modules: :mod:`laperm.optimizer` (the method), :mod:`laperm.models`,
:mod:`laperm.data`, :mod:`laperm.pruning`, :mod:`laperm.experiment`,
:mod:`laperm.profiles`, :mod:`laperm.viz`, :mod:`laperm.pretrained`.

Names are imported lazily, so that ``laperm`` (and its command line) starts
without loading Keras and TensorFlow until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LaPerm": "laperm.optimizer",
    "NonFiniteWeightsError": "laperm.optimizer",
    "LAPERM_PRESETS": "laperm.presets",
    "PermutationRecorder": "laperm.callbacks",
    "SyncPeriodScheduler": "laperm.callbacks",
    "PiecewiseSyncPeriod": "laperm.sync_schedules",
    "SyncPeriodSchedule": "laperm.sync_schedules",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'laperm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
