"""The authors' LaPerm beside ours, run in one process (Sections 4 and 5.5).

The paper's authors published their TensorFlow 2.1-era implementation
(``train_by_reconnect/LaPerm.py`` with ``LaPermTrainLoop``, and
``weight_utils.py`` with ``agnosticize``; MIT licence).  This module *loads*
their files from a reference directory at run time (it never copies them) and
runs them beside :class:`laperm.LaPerm` on the same inputs:

1. :func:`compare_sync`: their synchronisation and ours, from the same current
   weights and theta_0, for Dense and Conv kernels and 1-D variables, with
   ties and zeros (:func:`sync_cases`); :func:`sync_differences` shows the
   inputs on which the two behave differently, and why.
2. :func:`compare_training`: F1 or Conv7 trained by their ``LaPermTrainLoop``
   and by ``model.fit`` with :class:`laperm.LaPerm`, from the same theta_0, on
   the same batches in the same order, with the same k and learning-rate
   schedule; the weights are compared after each of the first syncs.
3. :func:`distribution`: F1 and F2 at the settings of the authors' notebook,
   with their code and with ours, over several seeds.

Where the authors' code lives, in order: the ``directory`` argument,
``$LAPERM_AUTHORS_CODE``, or ``../shared/reference/authors-code`` beside the
project checkout.  Either the repository root (holding ``train_by_reconnect/``)
or the ``train_by_reconnect`` folder itself may be given.  Users with internet
get the files with ``git clone https://github.com/ihsuy/Train-by-Reconnect``.

Their files ``import tensorflow as tf`` and use ``tf.keras`` (the Keras 2
API); our code uses ``import keras`` (Keras 3).  Both live in one process
because their files are executed in a namespace of their own, in which three
imports are redirected (the *shims*; the files on disk, the process-wide
``tensorflow`` and ``keras`` modules and every other import stay untouched):

* ``tensorflow``: their ``tf`` is a view of the real TensorFlow module whose
  ``tf.keras`` is tf-keras (``tf_keras``, the Keras 2 API that TensorFlow 2.1
  shipped as ``tf.keras``), and so are the Keras aliases ``tf.losses``,
  ``tf.metrics``, ``tf.optimizers`` and ``tf.initializers``.  Everything else
  (``tf.function``, ``tf.argsort``, ``tf.gather_nd`` ...) is TensorFlow's own.
  Setting ``TF_USE_LEGACY_KERAS=1`` would do the same for the whole process,
  and only if set before ``tf.keras`` is first touched; the view does not
  depend on import order.
* ``numpy.cast``: removed in numpy 2.0, used by ``agnosticize`` and
  ``random_prune`` as ``np.cast['int32'](a)``; their ``np`` is numpy with a
  ``cast`` whose ``cast[dtype](a)`` is ``np.asarray(a).astype(dtype)`` (what
  numpy 1 did).
* ``tqdm.notebook``: ``LaPerm.py`` imports ``trange`` from it, which needs
  ipywidgets and a notebook front end; it gets tqdm's plain ``trange``, silent
  unless :func:`authors_progress` turns it on.

The list is also :data:`SHIMS`.  The extra dependency is tf-keras, matching
the installed TensorFlow: ``pip install 'laperm[crosscheck]'``.  When it, the
directory or one of the two files is missing, :func:`load_authors_code` raises
:class:`CrossCheckUnavailable` with one sentence saying what to do.

Modules: :mod:`~laperm.crosscheck.authors` (finding and loading their files),
:mod:`~laperm.crosscheck.sync` (1), :mod:`~laperm.crosscheck.training` (2, with
their architectures in tf-keras), :mod:`~laperm.crosscheck.seed_runs` (3),
:mod:`~laperm.crosscheck.records` and :mod:`~laperm.crosscheck.cli`; their
public names are gathered here.

Command line (writes JSON records and CSV tables to ``results/crosscheck``)::

    python -m laperm.crosscheck sync
    python -m laperm.crosscheck training
    python -m laperm.crosscheck distribution --seeds 0 1 2
"""
from __future__ import annotations

from laperm.crosscheck.authors import (AUTHORS_FILES, AUTHORS_REPOSITORY, AuthorsCode,
                                       CrossCheckUnavailable, ENV_VAR, INSTALL_HINT, PACKAGE_FOLDER,
                                       SETUP_HINT, SHIMS, Shim, authors_progress, find_authors_code,
                                       load_authors_code, load_or_explain)
from laperm.crosscheck.cli import main
from laperm.crosscheck.records import (TRAINING_RUNS, default_out_dir, sync_record, training_record,
                                       training_table)
from laperm.crosscheck.seed_runs import (METRICS, NOTEBOOK_SETTINGS, SIDE_SETTINGS,
                                         authors_notebook_run, distribution, distribution_table,
                                         our_run, summarise)
from laperm.crosscheck.sync import (authors_sync, compare_sync, our_sync, sync_cases,
                                    sync_differences)
from laperm.crosscheck.training import (TrainingComparison, authors_model, compare_training,
                                        matching_loss)

__all__ = [
    "AUTHORS_FILES",
    "AUTHORS_REPOSITORY",
    "AuthorsCode",
    "CrossCheckUnavailable",
    "ENV_VAR",
    "INSTALL_HINT",
    "METRICS",
    "NOTEBOOK_SETTINGS",
    "PACKAGE_FOLDER",
    "SETUP_HINT",
    "SHIMS",
    "SIDE_SETTINGS",
    "Shim",
    "TRAINING_RUNS",
    "TrainingComparison",
    "authors_model",
    "authors_notebook_run",
    "authors_progress",
    "authors_sync",
    "compare_sync",
    "compare_training",
    "default_out_dir",
    "distribution",
    "distribution_table",
    "find_authors_code",
    "load_authors_code",
    "load_or_explain",
    "main",
    "matching_loss",
    "our_run",
    "our_sync",
    "summarise",
    "sync_cases",
    "sync_differences",
    "sync_record",
    "training_record",
    "training_table",
]
