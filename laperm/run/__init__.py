"""Training one run of the paper's experiments (Section 5); the front door is :mod:`laperm.experiment`.

* :mod:`~laperm.run.train`: :func:`~laperm.run.train.run`, building the model,
  optimizer and data of a config, the epochs, the resume decisions, the records;
* :mod:`~laperm.run.engine`: the device engine (an epoch as one compiled JAX program);
* :mod:`~laperm.run.evaluation`: how a run is judged (synced, stale BatchNorm, unsynced);
* :mod:`~laperm.run.files`: the run folder, written so that a kill loses nothing;
* :mod:`~laperm.run.provenance` and :mod:`~laperm.run.hardware`: where a result came from;
* :mod:`~laperm.run.devices` and :mod:`~laperm.run.backends`: devices and Keras backends.

Nothing is imported until it is used (:mod:`laperm` imports
:mod:`~laperm.run.backends` without Keras).
"""

from laperm._lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, ("backends", "devices", "engine", "evaluation", "files",
                                           "hardware", "provenance", "train"))
