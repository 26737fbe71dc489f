"""laperm: Train-by-Reconnect (Qiu & Suda, NeurIPS 2020) for Keras 3.

Train a network by only permuting its random initial weights::

    import keras, laperm
    model.compile(optimizer=laperm.LaPerm(keras.optimizers.Adam(1e-3), sync_period=20),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

Modules: :mod:`laperm.optimizer` (the method), :mod:`laperm.models`,
:mod:`laperm.data`, :mod:`laperm.pruning`, :mod:`laperm.experiment`,
:mod:`laperm.profiles` and :mod:`laperm.viz`.
"""

from laperm.callbacks import PermutationRecorder, SyncPeriodScheduler
from laperm.optimizer import LaPerm, NonFiniteWeightsError
from laperm.presets import LAPERM_PRESETS
from laperm.sync_schedules import PiecewiseSyncPeriod, SyncPeriodSchedule

__version__ = "0.1.0"

__all__ = [
    "LaPerm",
    "LAPERM_PRESETS",
    "NonFiniteWeightsError",
    "PermutationRecorder",
    "PiecewiseSyncPeriod",
    "SyncPeriodSchedule",
    "SyncPeriodScheduler",
    "__version__",
]
