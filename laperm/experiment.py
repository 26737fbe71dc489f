"""Run one experiment of the paper, reproducibly (Section 5): the front door.

The pieces live in modules with one job each; this module gathers what a user
needs for a run::

    from laperm.experiment import paper_config, run
    history, result = run(paper_config("conv7", epochs=3, train_fraction=0.1), "runs/conv7")

* :mod:`laperm.config`: :class:`ExperimentConfig`, the learning-rate schedules;
* :mod:`laperm.paper`: the paper's table and the settings of every experiment
  (:data:`EXPERIMENTS`, :data:`PAPER_ACCURACY`, :func:`paper_config`);
* :mod:`laperm.run.train`: :func:`run`, the data pipelines and the model of a config;
* :mod:`laperm.run.evaluation`: how a run is judged;
* :mod:`laperm.run.files`: the files of a run folder, written to survive kills;
* :mod:`laperm.run.provenance`: hardware, versions, commit, data fingerprint.
"""

from __future__ import annotations

from laperm.config import LR_SCHEDULES, PRECISIONS, ExperimentConfig, learning_rate_at
from laperm.paper import EXPERIMENTS, PAPER_ACCURACY, paper_config
from laperm.run.provenance import environment_info
from laperm.run.files import RunDirError, RunFiles
from laperm.run.train import build_model, build_optimizer, load_splits, prepare_data, run

__all__ = [
    "EXPERIMENTS", "LR_SCHEDULES", "PAPER_ACCURACY", "PRECISIONS", "ExperimentConfig",
    "RunDirError", "RunFiles", "build_model", "build_optimizer", "environment_info",
    "learning_rate_at", "load_splits", "paper_config", "prepare_data", "run",
]
