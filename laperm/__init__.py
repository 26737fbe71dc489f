"""laperm: Train-by-Reconnect (Qiu & Suda, NeurIPS 2020) for Keras 3.

Train a network by only permuting its random initial weights::

    import keras, laperm
    model.compile(optimizer=laperm.LaPerm(keras.optimizers.Adam(1e-3), sync_period=20),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

Layout: :mod:`laperm.method` (the algorithm), :mod:`laperm.config` (what defines
a run, validated once), :mod:`laperm.paper` (the paper's facts),
:mod:`laperm.models`, :mod:`laperm.pruning`, :mod:`laperm.data`,
:mod:`laperm.run` (training a run; front door :mod:`laperm.experiment`),
:mod:`laperm.analysis` (records, verdict, profiles), :mod:`laperm.viz` (figures),
:mod:`laperm.pretrained`, :mod:`laperm.crosscheck` (the authors' code beside
ours), :mod:`laperm.book` (the book's pages) and :mod:`laperm.torch`,
:mod:`laperm.optax` (LaPerm without Keras).

``import laperm`` imports Keras and registers the Keras-serialisable classes
(the optimizer, the sync-period schedules and the fused kernels), so that
``keras.models.load_model`` reads a model saved with a LaPerm optimizer in a
new process.  The other modules and names are imported lazily, on first use
(``laperm.pretrained.load(...)`` works right after ``import laperm``).

Without Keras installed (``pip install "laperm[pytorch]"`` or
``"laperm[optax]"``), ``import laperm.torch`` and ``import laperm.optax`` work
and the Keras names raise an ImportError that says what to install.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from laperm.run.backends import is_installed as _is_installed  # noqa: E402
from laperm.exceptions import LaPermStateError, NonFiniteWeightsError  # noqa: E402

#: Names that need Keras (the PyTorch and optax versions live in laperm.torch, laperm.optax).
_KERAS_NAMES = ("FusedAdam", "FusedBatchNormalization", "LaPerm", "find_laperm",
                "PiecewiseSyncPeriod", "SyncPeriodSchedule", "NonFiniteGuard",
                "recalibrate_batchnorm", "recalibrated_batchnorm", "PermutationRecorder",
                "SyncPeriodScheduler")

if _is_installed("keras"):
    # A missing Keras backend is told in one sentence (a laperm command: one line,
    # exit code 2) before Keras is imported and fails with a traceback.
    from laperm.run.backends import require_installed as _require_backend  # noqa: E402

    _require_backend()

    # Registration with Keras's serialisation happens at import time of these
    # modules: import them eagerly (they only need Keras).
    from laperm.method.fused import FusedAdam, FusedBatchNormalization  # noqa: E402
    from laperm.method.optimizer import LaPerm, find_laperm  # noqa: E402
    from laperm.method.schedules import PiecewiseSyncPeriod, SyncPeriodSchedule  # noqa: E402

_EXPORTS = {
    "LAPERM_PRESETS": "laperm.paper",
    "NonFiniteGuard": "laperm.method.callbacks",
    "recalibrate_batchnorm": "laperm.method.batchnorm",
    "recalibrated_batchnorm": "laperm.method.batchnorm",
    "PermutationRecorder": "laperm.method.callbacks",
    "SyncPeriodScheduler": "laperm.method.callbacks",
}

#: Submodules reachable as attributes of the package (imported on first use).
_SUBMODULES = (
    "analysis", "book", "cli", "config", "crosscheck", "data", "exceptions", "experiment",
    "method", "models", "optax", "paper", "pretrained", "project", "pruning", "reproduce", "run",
    "torch", "viz",
)

__all__ = sorted(
    [*_EXPORTS, "FusedAdam", "FusedBatchNormalization", "LaPerm", "find_laperm",
     "PiecewiseSyncPeriod", "SyncPeriodSchedule"] * _is_installed("keras")
    + ["LaPermStateError", "NonFiniteWeightsError", "__version__"]
)


def __getattr__(name):
    if name in _KERAS_NAMES and not _is_installed("keras"):
        raise ImportError(
            f"laperm.{name} needs Keras, which is not installed: pip install \"laperm[cpu]\" "
            "(Keras on TensorFlow; or laperm[jax], laperm[torch] for Keras on JAX or torch). "
            "Without Keras, use laperm.torch (PyTorch) or laperm.optax (JAX).")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"laperm.{name}")
    raise AttributeError(f"module 'laperm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
