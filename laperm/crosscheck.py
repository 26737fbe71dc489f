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

Command line (writes JSON records and CSV tables to ``results/crosscheck``)::

    python -m laperm.crosscheck sync
    python -m laperm.crosscheck training
    python -m laperm.crosscheck distribution --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import math
import os
import statistics
import sys
import time
import types
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from laperm import data
from laperm.atomic import atomic_write_json
from laperm.experiment import (build_model, environment_info, learning_rate_at, load_splits,
                               paper_config, prepare_data, run)
from laperm.optimizer import LaPerm, NonFiniteWeightsError
from laperm.project import is_project, project_root

#: Environment variable naming the folder of the authors' code.
ENV_VAR = "LAPERM_AUTHORS_CODE"
#: The authors' repository (MIT licence).
AUTHORS_REPOSITORY = "https://github.com/ihsuy/Train-by-Reconnect"
#: The package folder inside their repository and the files loaded from it.
PACKAGE_FOLDER = "train_by_reconnect"
AUTHORS_FILES = ("LaPerm.py", "weight_utils.py")
#: The sentence that says how to get tf-keras.
INSTALL_HINT = ("pip install 'laperm[crosscheck]' (or pip install tf-keras with the version "
                "of your TensorFlow)")


#: What a reader does to run the cross-check, in one sentence (no local paths).
SETUP_HINT = (f"to run it, install tf-keras ({INSTALL_HINT}) and put a clone of "
              f"{AUTHORS_REPOSITORY} at ../shared/reference/authors-code beside the project, "
              f"or set ${ENV_VAR} to the clone")


class CrossCheckUnavailable(RuntimeError):
    """The authors' code or tf-keras is not available; the message says what to do.

    Attributes:
        reason: what is missing, in a few words without local paths (for a page).
    """

    def __init__(self, message: str, reason: str = "the authors' code is not available"):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Shim:
    """One import redirected in the namespace the authors' files run in.

    Attributes:
        name: what their file imports.
        replacement: what it gets instead.
        reason: why the original does not work in this environment.
    """

    name: str
    replacement: str
    reason: str


#: Every shim applied when the authors' files are loaded (see the module docstring).
SHIMS: tuple[Shim, ...] = (
    Shim("tensorflow",
         "a view of TensorFlow whose keras, losses, metrics, optimizers and initializers "
         "are tf-keras's",
         "their files use tf.keras, the Keras 2 API; in TensorFlow >= 2.16 tf.keras is "
         "Keras 3 unless TF_USE_LEGACY_KERAS is set before first use, for the whole process"),
    Shim("numpy.cast",
         "numpy with cast[dtype](a) = np.asarray(a).astype(dtype)",
         "np.cast was removed in numpy 2.0; agnosticize and random_prune use it"),
    Shim("tqdm.notebook",
         "tqdm.trange, silent unless authors_progress(True)",
         "tqdm.notebook needs ipywidgets and a notebook front end"),
)


# --------------------------------------------------------------------------
# Loading the authors' files
# --------------------------------------------------------------------------


def _default_directory() -> Path:
    root = project_root(required=False)
    if root is None:
        package_parent = Path(__file__).resolve().parents[1]
        root = package_parent if is_project(package_parent) else Path.cwd()
    return root.parent / "shared" / "reference" / "authors-code"


def find_authors_code(directory: str | os.PathLike | None = None) -> Path:
    """The folder holding the authors' ``LaPerm.py`` and ``weight_utils.py``.

    Args:
        directory: the authors' repository (or its ``train_by_reconnect``
            folder); else ``$LAPERM_AUTHORS_CODE``; else
            ``../shared/reference/authors-code`` beside the project checkout.

    Returns:
        The resolved ``train_by_reconnect`` folder.

    Raises:
        CrossCheckUnavailable: the folder or one of the two files is missing.
    """
    if directory is not None:
        path, where = Path(directory).expanduser(), "the given folder"
    elif os.environ.get(ENV_VAR):
        path, where = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        path, where = _default_directory(), "the default place"
    path = path.resolve()
    if not path.is_dir():
        raise CrossCheckUnavailable(
            f"The authors' code was not found at {path} ({where}): git clone "
            f"{AUTHORS_REPOSITORY} and set ${ENV_VAR} to the clone.",
            reason="the authors' code was not found")
    package = path / PACKAGE_FOLDER if (path / PACKAGE_FOLDER).is_dir() else path
    for name in AUTHORS_FILES:
        if not (package / name).is_file():
            raise CrossCheckUnavailable(
                f"The authors' code at {path} lacks {PACKAGE_FOLDER}/{name}: set ${ENV_VAR} "
                f"to a complete clone of {AUTHORS_REPOSITORY}.",
                reason=f"the authors' code lacks {name}")
    return package


def _import_tf_keras():
    """tf-keras's ``tf.keras`` API module (``tf_keras.api._v2.keras``)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise CrossCheckUnavailable(
            f"The authors' code needs TensorFlow and tf-keras: {INSTALL_HINT}.",
            reason="TensorFlow is not installed") from exc
    try:
        importlib.import_module("tf_keras")
    except ImportError as exc:
        raise CrossCheckUnavailable(
            f"tf-keras, the Keras 2 API the authors' code needs, is not installed: "
            f"{INSTALL_HINT}.", reason="tf-keras is not installed") from exc
    try:
        return importlib.import_module("tf_keras.api._v2.keras")
    except ImportError:  # pragma: no cover - other tf-keras layouts
        return importlib.import_module("tf_keras")


class _TensorFlowView(types.ModuleType):
    """TensorFlow as the authors' files saw it in TF 2.1: ``tf.keras`` is Keras 2."""

    def __init__(self, tf, keras2):
        super().__init__("tensorflow", "TensorFlow with tf.keras = tf-keras (crosscheck shim)")
        self.__dict__["_real"] = tf
        self.__dict__["keras"] = keras2
        for alias in ("losses", "metrics", "optimizers", "initializers"):
            self.__dict__[alias] = getattr(keras2, alias)

    def __getattr__(self, name):
        return getattr(self.__dict__["_real"], name)


class _Cast:
    """numpy 1's ``np.cast``: ``cast[dtype](a)`` converts ``a`` to ``dtype``."""

    def __getitem__(self, dtype):
        return lambda a: np.asarray(a).astype(dtype)


class _NumpyView(types.ModuleType):
    """numpy with ``np.cast`` (removed in numpy 2.0)."""

    def __init__(self):
        super().__init__("numpy", "numpy with np.cast (crosscheck shim)")
        self.__dict__["cast"] = _Cast()

    def __getattr__(self, name):
        return getattr(np, name)


_PROGRESS = {"on": False}


@contextlib.contextmanager
def authors_progress(on: bool = True):
    """Show (or hide) the progress bars of the authors' training loop."""
    before = _PROGRESS["on"]
    _PROGRESS["on"] = bool(on)
    try:
        yield
    finally:
        _PROGRESS["on"] = before


def _trange(*args, **kwargs):
    from tqdm import trange

    kwargs.setdefault("disable", not _PROGRESS["on"])
    kwargs.pop("ncols", None)
    return trange(*args, **kwargs)


def _shimmed_builtins(tf_view, np_view, notebook):
    mapping = {"tensorflow": tf_view, "numpy": np_view, "tqdm.notebook": notebook}
    real_import = builtins.__import__

    def shimmed_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in mapping:
            return mapping[name]
        return real_import(name, globals, locals, fromlist, level)

    namespace = dict(vars(builtins))
    namespace["__import__"] = shimmed_import
    return namespace


@dataclasses.dataclass(frozen=True)
class AuthorsCode:
    """The authors' modules, loaded with the shims.

    Attributes:
        directory: their ``train_by_reconnect`` folder.
        LaPerm: their ``LaPerm.py`` (``LaPerm``, ``LaPermTrainLoop``).
        weight_utils: their ``weight_utils.py`` (``agnosticize``, ``random_prune``).
        keras: tf-keras, i.e. their ``tf.keras``.
        sha256: sha256 of each loaded file.
    """

    directory: Path
    LaPerm: types.ModuleType
    weight_utils: types.ModuleType
    keras: types.ModuleType
    sha256: dict

    def describe(self) -> dict:
        """A JSON-able note of where the code came from and the shims applied."""
        return {"directory": str(self.directory), "sha256": dict(self.sha256),
                "repository": AUTHORS_REPOSITORY, "tf_keras": _tf_keras_version(),
                "shims": [dataclasses.asdict(s) for s in SHIMS]}


_LOADED: dict[Path, AuthorsCode] = {}


def _tf_keras_version() -> str:
    try:
        return importlib.import_module("tf_keras").__version__
    except ImportError:  # pragma: no cover
        return "not installed"


def load_authors_code(directory: str | os.PathLike | None = None) -> AuthorsCode:
    """Load the authors' ``LaPerm.py`` and ``weight_utils.py`` with the shims.

    Args:
        directory: see :func:`find_authors_code`.

    Returns:
        An :class:`AuthorsCode` (cached per folder).

    Raises:
        CrossCheckUnavailable: tf-keras, the folder or a file is missing.
    """
    keras2 = _import_tf_keras()
    package = find_authors_code(directory)
    if package in _LOADED:
        return _LOADED[package]
    import tensorflow as tf

    notebook = types.ModuleType("tqdm.notebook", "tqdm's plain trange (crosscheck shim)")
    notebook.trange = _trange
    namespace = _shimmed_builtins(_TensorFlowView(tf, keras2), _NumpyView(), notebook)
    modules, digests = {}, {}
    prefix = "_laperm_authors_" + hashlib.sha256(str(package).encode()).hexdigest()[:8]
    for filename in AUTHORS_FILES:
        path = package / filename
        source = path.read_bytes()
        digests[filename] = hashlib.sha256(source).hexdigest()
        module = types.ModuleType(f"{prefix}.{path.stem}")
        module.__file__ = str(path)
        module.__builtins__ = namespace
        sys.modules[module.__name__] = module
        exec(compile(source, str(path), "exec"), module.__dict__)
        modules[path.stem] = module
    code = AuthorsCode(package, modules["LaPerm"], modules["weight_utils"], keras2, digests)
    _LOADED[package] = code
    return code


# --------------------------------------------------------------------------
# 1. The same sync
# --------------------------------------------------------------------------


def authors_sync(current: Sequence[np.ndarray], theta0: Sequence[np.ndarray],
                 code: AuthorsCode | None = None) -> list[np.ndarray]:
    """Their synchronisation (``LaPerm.sort_theta`` then ``apply_synchronization``).

    Args:
        current: the weights to synchronise, one array per variable (rank 1,
            2 or 4, the ranks their code handles).
        theta0: the initial weights, same shapes.
        code: the loaded authors' code (default: :func:`load_authors_code`).

    Returns:
        The synchronised weights, one array per variable.
    """
    import tensorflow as tf

    code = code or load_authors_code()
    variables = [tf.Variable(np.asarray(t, np.float32), name=f"w{i}")
                 for i, t in enumerate(theta0)]
    holder = types.SimpleNamespace(trainable_variables=variables)
    theirs = code.LaPerm.LaPerm(skip_bn=False, skip_bias=False)
    theirs.set_model(holder)
    with _quiet_tensorflow():
        theirs.sort_theta()
        for v, c in zip(variables, current):
            v.assign(np.asarray(c, np.float32))
        theirs.apply_synchronization(variables)
    return [v.numpy() for v in variables]


@contextlib.contextmanager
def _quiet_tensorflow():
    """Hide TensorFlow's retracing warnings (each call builds a new LaPerm of theirs)."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def our_sync(current: Sequence[np.ndarray], theta0: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Our synchronisation: :class:`laperm.LaPerm` built on theta_0, then ``sync_now``.

    Args:
        current: the weights to synchronise, one array per variable.
        theta0: the initial weights, same shapes.

    Returns:
        The synchronised weights, one array per variable.
    """
    import keras

    variables = [keras.Variable(np.asarray(t, np.float32), name=f"w{i}")
                 for i, t in enumerate(theta0)]
    ours = LaPerm(keras.optimizers.Adam(), sync_period=1, skip_bias=False, skip_bn=False)
    ours.build(variables)
    for v, c in zip(variables, current):
        v.assign(np.asarray(c, np.float32))
    ours.sync_now()
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in variables]


def _bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def sync_cases(seed: int = 0) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Inputs of the sync comparison: ``{name: (current weights, theta_0)}``.

    Dense ``(in, out)`` and Conv ``(kh, kw, cin, cout)`` kernels and 1-D
    variables; continuous values, ties (values on a coarse grid), exact zeros
    (pruned theta_0), signed zeros, a shared-value kernel after a few Adam-like
    steps of +-lr (ties everywhere), and a vector whose entries are all equal.
    """
    rng = np.random.default_rng(seed)
    f = np.float32

    def he(shape):
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
        limit = math.sqrt(6 / fan_in)
        return rng.uniform(-limit, limit, shape).astype(f)

    def grid(shape, levels=4):
        return (rng.integers(0, levels, shape) * 0.25).astype(f)

    dense0, conv0, bias0 = he((784, 10)), he((3, 3, 16, 8)), he((64,))
    pruned0 = np.where(rng.random((200, 30)) < 0.4, he((200, 30)), f(0))
    shared0 = np.where(rng.random((784, 10)) < 0.6, f(0.08), f(0))
    signed0 = np.where(rng.random((5, 5, 3, 4)) < 0.5, f(-0.0), f(0.0)) + np.where(
        rng.random((5, 5, 3, 4)) < 0.3, he((5, 5, 3, 4)), f(0))
    steps = rng.choice(np.array([-1e-3, 0, 1e-3], f), size=(4,) + shared0.shape).sum(0)
    return {
        "dense kernel (784, 10), continuous": ([dense0 + he((784, 10)) * f(0.1)], [dense0]),
        "conv kernel (3, 3, 16, 8), continuous": ([conv0 + he((3, 3, 16, 8))], [conv0]),
        "1-D variable (64,), continuous": ([bias0 + he((64,))], [bias0]),
        "dense, ties in current and theta_0": ([grid((50, 12))], [grid((50, 12), 3)]),
        "conv, ties in current and theta_0": ([grid((3, 3, 4, 6))], [grid((3, 3, 4, 6), 2)]),
        "1-D, ties": ([grid((40,))], [grid((40,), 2)]),
        "dense, 60% zeros in theta_0 and exact zeros in current": (
            [np.where(rng.random((200, 30)) < 0.3, f(0), he((200, 30)))], [pruned0]),
        "conv, signed zeros (-0.0 and 0.0)": (
            [np.where(rng.random((5, 5, 3, 4)) < 0.5, f(-0.0), he((5, 5, 3, 4)))], [signed0]),
        "shared value {0, 0.08} after steps of +-lr": ([shared0 + steps.astype(f)], [shared0]),
        "all entries of current equal": ([np.full((30, 7), 0.5, f)], [he((30, 7))]),
        "several variables at once (conv, 1-D, dense)": (
            [conv0 * f(-1), bias0[::-1].copy(), dense0 * f(0.5) + he((784, 10))],
            [conv0, bias0, dense0]),
    }


def compare_sync(cases: dict | None = None, code: AuthorsCode | None = None) -> pd.DataFrame:
    """Their sync and ours on the same inputs, bit for bit (Section 4).

    Args:
        cases: ``{name: (current, theta0)}`` (default :func:`sync_cases`).
        code: the loaded authors' code.

    Returns:
        One row per case and variable: ``case, variable, shape, positions,
        differing`` (positions whose float32 bits differ), ``identical``.
    """
    code = code or load_authors_code()
    rows = []
    for name, (current, theta0) in (cases or sync_cases()).items():
        theirs = authors_sync(current, theta0, code)
        ours = our_sync(current, theta0)
        for i, (a, b) in enumerate(zip(theirs, ours)):
            differing = int(np.count_nonzero(_bits(a) != _bits(b)))
            rows.append({"case": name, "variable": i, "shape": tuple(a.shape),
                         "positions": int(a.size), "differing": differing,
                         "identical": differing == 0})
    return pd.DataFrame(rows)


def sync_differences(code: AuthorsCode | None = None) -> pd.DataFrame:
    """Inputs on which their sync and ours behave differently, with the reason.

    * NaN in a weight vector: theirs permutes anyway (NaN takes a rank from the
      sort), ours refuses with :class:`laperm.optimizer.NonFiniteWeightsError`
      and leaves the weights unchanged, since no permutation of theta_0 can be
      meant.
    * a rank-3 kernel (``Conv1D``): theirs raises ``NotImplementedError`` (it
      handles ranks 1, 2 and 4); ours treats every rank the same way (the last
      axis indexes output units).

    Returns:
        One row per input: ``case, authors, ours, reason``.
    """
    code = code or load_authors_code()
    rng = np.random.default_rng(1)
    nan_current = rng.standard_normal((20, 4)).astype(np.float32)
    nan_current[3, 1] = np.nan
    cases = [
        ("NaN in a Dense kernel", [nan_current], [rng.standard_normal((20, 4)).astype(np.float32)],
         "a NaN has no rank among numbers: theirs sorts it somewhere and permutes; ours "
         "refuses to sync non-finite weights"),
        ("rank-3 kernel (Conv1D, (3, 4, 5))", [rng.standard_normal((3, 4, 5)).astype(np.float32)],
         [rng.standard_normal((3, 4, 5)).astype(np.float32)],
         "theirs handles ranks 1, 2 and 4 only; ours uses the last axis as output units "
         "for every rank"),
    ]
    rows = []
    for name, current, theta0, reason in cases:
        outcomes = []
        for fn in (functools.partial(authors_sync, code=code), our_sync):
            try:
                out = fn(current, theta0)
                is_perm = all(np.array_equal(np.sort(_rows(o), 1), np.sort(_rows(t), 1),
                                             equal_nan=True) for o, t in zip(out, theta0))
                outcomes.append("synchronised" + (" (a permutation of theta_0)" if is_perm
                                                  else " (not a permutation of theta_0)"))
            except NonFiniteWeightsError:
                outcomes.append("raises NonFiniteWeightsError")
            except Exception as exc:  # their code: NotImplementedError, or TF's wrapping of it
                outcomes.append(f"raises {type(exc).__name__}")
        rows.append({"case": name, "authors": outcomes[0], "ours": outcomes[1], "reason": reason})
    return pd.DataFrame(rows)


def _rows(a) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(-1, a.shape[-1]).T


# --------------------------------------------------------------------------
# The authors' architectures in tf-keras, and the matching loss
# --------------------------------------------------------------------------


def authors_model(name: str, code: AuthorsCode | None = None):
    """F1, F2 or Conv7 built with tf-keras, in the authors' notebooks' layer order.

    Args:
        name: ``"f1"``, ``"f2"`` or ``"conv7"`` (Sections 5.1, 5.5).
        code: the loaded authors' code (for its tf-keras).

    Returns:
        A tf-keras ``Sequential`` taking ``(28, 28, 1)`` images; its weights load
        from our model's ``get_weights()`` (same order and shapes).
    """
    k2 = (code or load_authors_code()).keras
    layers = k2.layers
    if name == "f1":
        stack = [layers.Flatten(input_shape=(28, 28, 1)),
                 layers.Dense(10, activation="softmax", use_bias=False)]
    elif name == "f2":
        stack = [layers.Flatten(input_shape=(28, 28, 1)),
                 layers.Dense(128, activation="relu", use_bias=False,
                              kernel_regularizer=k2.regularizers.l2(1e-4)),
                 layers.Dense(64, activation="relu", use_bias=False,
                              kernel_regularizer=k2.regularizers.l2(1e-4)),
                 layers.Dense(10, activation="softmax", use_bias=False)]
    elif name == "conv7":
        init = dict(kernel_initializer="he_uniform", bias_initializer="he_uniform",
                    activation="relu")
        stack = [layers.Conv2D(32, 3, input_shape=(28, 28, 1), **init),
                 layers.Conv2D(32, 3, **init),
                 layers.Conv2D(32, 5, strides=2, padding="same", **init),
                 layers.Dropout(0.4),
                 layers.Conv2D(64, 3, **init),
                 layers.Conv2D(64, 3, **init),
                 layers.Conv2D(64, 5, strides=2, padding="same", **init),
                 layers.Dropout(0.4),
                 layers.Conv2D(128, 4, **init),
                 layers.Flatten(),
                 layers.Dropout(0.4),
                 layers.Dense(10, activation="softmax", kernel_initializer="he_uniform",
                              bias_initializer="he_uniform")]
    else:
        raise ValueError(f"authors_model builds 'f1', 'f2' or 'conv7'; received {name!r}.")
    return k2.Sequential(stack)


def matching_loss(model=None):
    """Our loss made to compute what the authors' training loop differentiates.

    Two facts of ``LaPermTrainLoop`` (Section 4's inner optimizer step):

    * **Scale.**  It differentiates the *per-sample* cross-entropy vector with
      the regularisation penalty added to every sample, i.e. the gradient of
      ``sum_i CE_i + B * penalty`` for a batch of B; Keras minimises
      ``mean_i CE_i + penalty``, B times smaller.  Under Adam a constant factor
      on the loss cancels except against epsilon, whose relative size it
      changes.
    * **Formula.**  Its cross-entropy is a ``tf.function`` of its own, called on
      the model's softmax output: inside it the softmax cannot be seen, so the
      cross-entropy is taken from the clipped probabilities,
      ``-log(clip(p_y, 1e-7, 1 - 1e-7))`` (through TensorFlow's logits
      formula applied to ``log p``), not fused with the softmax from the logits
      as Keras (ours, and theirs outside a nested function) does.  The two agree
      in value to rounding; their gradients differ in the last bits.

    Adam's step is nearly ``lr * sign(g)`` for small gradients, so last-bit
    differences in near-zero gradient entries become differences of a whole
    step, which can reorder near-equal weights and so move positions at a
    sync.  This loss reproduces both facts: the cross-entropy from the
    clipped probabilities, summed over the batch, plus ``(B - 1) / B`` of the
    penalty per sample (Keras adds the penalty once more itself).

    Args:
        model: the Keras 3 model, needed only when it has regularisers.

    Returns:
        A Keras loss with ``reduction="sum"``.
    """
    import keras
    from keras import ops

    class AuthorsLoopLoss(keras.losses.Loss):
        def __init__(self):
            super().__init__(name="authors_loop_crossentropy", reduction="sum")

        def call(self, y_true, y_pred):
            eps = keras.config.epsilon()
            log_p = ops.log(ops.clip(y_pred, eps, 1.0 - eps))
            ce = ops.sparse_categorical_crossentropy(y_true, log_p, from_logits=True)
            if model is not None and model.losses:
                b = ops.cast(ops.shape(ce)[0], ce.dtype)
                ce = ce + (b - 1.0) / b * ops.sum(ops.stack(model.losses))
            return ce

    return AuthorsLoopLoss()


# --------------------------------------------------------------------------
# 2. The same training
# --------------------------------------------------------------------------


class _Enough(Exception):
    """Stops the authors' loop once the steps to compare have run."""


class _FeedFlow:
    """What ``LaPermTrainLoop.fit`` calls ``datagen.flow(...)`` on: our batches, in order.

    Each ``next()`` is called at the start of a step, so the model then holds
    the weights after the previous step (and its sync): they are recorded
    for the steps asked.
    """

    def __init__(self, dataset, model, record_steps=(), last_step=None, digests=None):
        self._batches = iter(dataset)
        self._model = model
        self._record = set(record_steps)
        self._last = last_step
        self.calls = 0
        self.snapshots: dict[int, list[np.ndarray]] = {}
        self.digests = digests

    def flow(self, **_ignored):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        done = self.calls
        if done in self._record:
            self.snapshots[done] = [v.numpy().copy() for v in self._model.trainable_variables]
        if self._last is not None and done >= self._last:
            raise _Enough()
        self.calls += 1
        x, y = next(self._batches)
        x, y = np.asarray(x), np.asarray(y)
        if self.digests is not None:
            self.digests.append(_digest(x, y))
        return x, y


def _digest(x, y) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


class _Length:
    """Stands in for the training images in ``LaPermTrainLoop.fit``: only ``len`` is used."""

    def __init__(self, n):
        self._n = int(n)

    def __len__(self):
        return self._n


def _our_snapshot_callback(record_steps, last_step):
    import keras

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
            self.snapshots = {}

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step in record_steps:
                self.snapshots[self.step] = [
                    np.asarray(keras.ops.convert_to_numpy(v.value)).copy()
                    for v in self.model.trainable_variables]
            if self.step >= last_step:
                self.model.stop_training = True

    return Snapshots()


def _chance_agreement(theta0: Sequence[np.ndarray], permuted_mask: Sequence[bool]) -> float:
    """Positions two independent random permutations (within vectors) share, expected."""
    expected, total = 0.0, 0
    for t, permuted in zip(theta0, permuted_mask):
        rows = _rows(t)
        total += rows.size
        if not permuted:
            expected += rows.size
            continue
        for row in rows:
            _, counts = np.unique(_bits(row), return_counts=True)
            expected += float((counts.astype(np.float64) ** 2).sum() / row.size)
    return expected / total if total else float("nan")


def _is_permutation(weights, theta0) -> bool:
    return all(np.array_equal(np.sort(_rows(w), 1), np.sort(_rows(t), 1))
               for w, t in zip(weights, theta0))


@dataclasses.dataclass
class TrainingComparison:
    """Weights of the authors' loop and ours after the same steps.

    Attributes:
        model: ``"f1"`` or ``"conv7"`` (or ``"f2"``).
        settings: k, batch size, learning-rate schedule, loss, dropout, seed ...
        same_batches: both sides trained on batches with identical bytes.
        table: one row per compared step: ``step, sync`` (the number of syncs
            done, or None between syncs), ``positions, agree, agree_fraction,
            chance_fraction`` (what two unrelated permutations of theta_0 would
            share), ``max_abs_diff``, ``ours_permutation, authors_permutation``
            (each side's weights are a permutation of theta_0 within vectors).
    """

    model: str
    settings: dict
    same_batches: bool
    table: pd.DataFrame

    def to_dict(self) -> dict:
        return {"model": self.model, "settings": self.settings,
                "same_batches": self.same_batches,
                "table": json.loads(self.table.to_json(orient="records"))}


def compare_training(model: str = "f1", *, syncs: int = 3, sync_period: int | None = None,
                     matching: bool = False, dropout: bool = True, seed: int = 0,
                     train_fraction: float = 1.0, data_dir=None,
                     code: AuthorsCode | None = None) -> TrainingComparison:
    """Train with their ``LaPermTrainLoop`` and with ``model.fit`` + LaPerm, side by side.

    Both start from the same theta_0 (our :func:`laperm.experiment.build_model`
    of the paper's config, copied into the tf-keras model), see the same batches
    in the same order (our pipeline, :func:`laperm.experiment.prepare_data`,
    iterated once per side and checked byte for byte), use Adam with the same
    k and learning-rate schedule, and permute the same variables.  The weights
    are compared after the first step, just before the first sync, and after
    each of the first ``syncs`` syncs (Section 4).

    Args:
        model: ``"f1"`` (Section 5.5; k = 250) or ``"conv7"`` (Section 5.1; the
            notebook's k = 20), or ``"f2"``.
        syncs: number of syncs to compare.
        sync_period: k (default: the paper's config: 250 for F1, 20 for Conv7).
        matching: train ours with :func:`matching_loss` (the authors' scale of
            the loss) instead of Keras's mean cross-entropy.
        dropout: keep the dropout layers (Conv7); each side then draws its own
            masks from its own random generator, so the weights part at once.
        seed: the config's seed (theta_0, data order, augmentation).
        train_fraction: share of the training set in the pipeline (smaller
            epochs make the learning-rate schedule change sooner).
        data_dir: folder with ``mnist.npz``.
        code: the loaded authors' code.

    Returns:
        A :class:`TrainingComparison`.
    """
    import keras

    code = code or load_authors_code()
    base = {"f1": "f1", "f2": "f2", "conv7": "conv7_k20"}.get(model)
    if base is None:
        raise ValueError(f"compare_training takes 'f1', 'f2' or 'conv7'; received {model!r}.")
    probe = paper_config(base, seed=seed, train_fraction=train_fraction, bn_batches=0)
    k = int(sync_period or probe.sync_period)
    total = syncs * k
    splits = load_splits(probe, data_dir)
    pipes = prepare_data(probe.replace(epochs=1), data_dir, splits=splits)
    steps_per_epoch = pipes["steps_per_epoch"]
    epochs = max(1, math.ceil(total / steps_per_epoch))
    config = probe.replace(sync_period=k, epochs=epochs)

    def batches():
        return prepare_data(config, data_dir, splits=splits)["train"]

    ours_model, _ = build_model(config)
    theirs_model = authors_model(model, code)
    theirs_model.set_weights(ours_model.get_weights())
    if not dropout:
        for layer in ours_model.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        for layer in theirs_model.layers:
            if isinstance(layer, code.keras.layers.Dropout):
                layer.rate = 0.0
    theta0 = [np.asarray(w).copy() for w in ours_model.get_weights()]
    record = sorted({1, max(1, k - 1)} | {j * k for j in range(1, syncs + 1)})

    def lr(epoch):
        return learning_rate_at(config.lr_schedule, config.learning_rate, epoch)

    # Theirs.
    keras.utils.set_random_seed(seed)
    code.keras.utils.set_random_seed(seed)
    their_digests: list[str] = []
    feed = _FeedFlow(batches(), theirs_model, record, total,
                     their_digests)
    loop = code.LaPerm.LaPermTrainLoop(
        model=theirs_model, loss="sparse_categorical_crossentropy",
        inner_optimizer=code.keras.optimizers.Adam(config.learning_rate),
        k_schedule=lambda epoch: k, lr_schedule=lr,
        skip_bn=config.skip_bn, skip_bias=config.skip_bias)
    try:
        loop.fit(_Length(pipes["n_train"]), None, batch_size=config.batch_size, epochs=epochs,
                 datagen=feed, validation_data=(None, None), validation_freq=None)
    except _Enough:
        pass
    else:  # the loop ran out of epochs exactly at the last step: no next() call after it
        feed.snapshots.setdefault(feed.calls, [v.numpy().copy()
                                               for v in theirs_model.trainable_variables])
    theirs = feed.snapshots

    # Ours.
    keras.utils.set_random_seed(seed)
    optimizer = LaPerm(keras.optimizers.Adam(config.learning_rate), sync_period=k,
                       skip_bias=config.skip_bias, skip_bn=config.skip_bn)
    ours_model.compile(optimizer=optimizer,
                       loss=matching_loss(ours_model) if matching
                       else "sparse_categorical_crossentropy")
    snapshots = _our_snapshot_callback(set(record), total)
    train = batches()
    ours_model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
                   shuffle=False, callbacks=[
                       keras.callbacks.LearningRateScheduler(lambda e, _: lr(e)), snapshots])
    ours = snapshots.snapshots
    our_digests = [_digest(np.asarray(x), np.asarray(y))
                   for x, y in batches().take(total)]
    mask = list(optimizer._permuted_mask)

    chance = _chance_agreement(theta0, mask)
    rows = []
    for step in record:
        a, b = ours.get(step), theirs.get(step)
        if a is None or b is None:
            continue
        agree = sum(int(np.count_nonzero(_bits(x) == _bits(y))) for x, y in zip(a, b))
        positions = sum(int(x.size) for x in a)
        synced = step % k == 0
        rows.append({
            "step": step, "sync": step // k if synced else None, "positions": positions,
            "agree": agree, "agree_fraction": agree / positions,
            "chance_fraction": chance if synced else None,
            "max_abs_diff": float(max(np.max(np.abs(x - y)) for x, y in zip(a, b))),
            "ours_permutation": _is_permutation(
                [w for w, m in zip(a, mask) if m], [t for t, m in zip(theta0, mask) if m]),
            "authors_permutation": _is_permutation(
                [w for w, m in zip(b, mask) if m], [t for t, m in zip(theta0, mask) if m]),
        })
    settings = {
        "sync_period": k, "syncs": syncs, "steps": total, "batch_size": config.batch_size,
        "steps_per_epoch": steps_per_epoch, "n_train": pipes["n_train"],
        "train_fraction": train_fraction, "lr_schedule": config.lr_schedule,
        "learning_rate": config.learning_rate, "seed": seed,
        "loss": ("ours: summed cross-entropy (+ B x penalty), the authors' scale" if matching
                 else "ours: mean cross-entropy (+ penalty), Keras's default; theirs: summed"),
        "matching_loss": bool(matching), "dropout": bool(dropout),
        "permuted_variables": int(sum(mask)), "variables": len(mask),
        "initial_weights": _init_note(config),
    }
    return TrainingComparison(model, settings, their_digests == our_digests, pd.DataFrame(rows))


def _init_note(config) -> str:
    if config.shared_value is not None:
        return f"shared value {config.shared_value}, keep {config.shared_keep} (Bernoulli mask)"
    return "He-uniform kernels and biases"


# --------------------------------------------------------------------------
# 3. The same distribution
# --------------------------------------------------------------------------

#: The settings of the authors' F1/F2 notebook (``F1_and_F2.ipynb``).
NOTEBOOK_SETTINGS: dict[str, dict] = {
    "f1": {"shared_value": 0.08, "prune_ratio": [(4, 7)], "epochs": 10},
    "f2": {"shared_value": 0.03, "prune_ratio": [(1, 15), (1, 7), (1, 3)], "epochs": 25},
}
_NOTEBOOK_COMMON = {"batch_size": 128, "sync_period": 250, "learning_rate": 1e-3,
                    "lr_schedule": "1e-3 * 0.95**epoch", "validation_freq": 250,
                    "tsize": 30000}


def authors_notebook_run(model: str, seed: int, *, data_dir=None, epochs: int | None = None,
                         train_size: int | None = None, code: AuthorsCode | None = None,
                         progress: bool = False) -> dict:
    """F1 or F2 trained by the authors' code at their notebook's settings.

    As in ``F1_and_F2.ipynb``: all 60000 MNIST training images /255, batch
    128, ``agnosticize`` (F1: value 0.08 keeping 4/7 of the weights; F2: 0.03
    keeping 1/15, 1/7, 1/3 per layer), Adam with lr 1e-3 x 0.95^epoch,
    k = 250, a test-set evaluation every 250 steps (synchronised weights) whose
    best is kept: the test set chooses the reported weights.  Seeded with
    tf-keras's ``set_random_seed`` (Python, numpy, TensorFlow).

    Args:
        model: ``"f1"`` or ``"f2"``.
        seed: the seed.
        data_dir: folder with ``mnist.npz``.
        epochs: fewer epochs than the notebook (for quick checks).
        train_size: use only the first ``train_size`` training images (quick checks).
        code: the loaded authors' code.
        progress: show their progress bars.

    Returns:
        A JSON-able dict: ``best_test_accuracy`` (the notebook's number),
        ``last_test_accuracy`` (the last evaluation), the history, the
        initial non-zero fraction, wall time.
    """
    code = code or load_authors_code()
    settings = NOTEBOOK_SETTINGS[model]
    epochs = int(epochs or settings["epochs"])
    (x_train, y_train), (x_test, y_test) = data.load("mnist", data_dir)
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    x_train = np.expand_dims(x_train.astype("float32") / 255.0, -1)
    x_test = np.expand_dims(x_test.astype("float32") / 255.0, -1)
    k2 = code.keras
    k2.utils.set_random_seed(seed)
    net = authors_model(model, code)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code.weight_utils.agnosticize(net, val=settings["shared_value"],
                                      prune_ratio=list(settings["prune_ratio"]))
    kernels = [v.numpy() for v in net.trainable_variables]
    nonzero = [float(np.count_nonzero(w) / w.size) for w in kernels]
    datagen = k2.preprocessing.image.ImageDataGenerator()
    datagen.fit(x_train)
    loop = code.LaPerm.LaPermTrainLoop(
        model=net, loss="sparse_categorical_crossentropy",
        inner_optimizer=k2.optimizers.Adam(),
        k_schedule=lambda epoch: _NOTEBOOK_COMMON["sync_period"],
        lr_schedule=lambda epoch: _NOTEBOOK_COMMON["learning_rate"] * 0.95 ** epoch,
        skip_bias=False)
    start = time.perf_counter()
    tsize = min(_NOTEBOOK_COMMON["tsize"], len(x_train))
    with authors_progress(progress):
        loop.fit(x_train, y_train, batch_size=_NOTEBOOK_COMMON["batch_size"], epochs=epochs,
                 datagen=datagen, validation_data=(x_test, y_test),
                 validation_freq=_NOTEBOOK_COMMON["validation_freq"], tsize=tsize)
    wall = time.perf_counter() - start
    history = [float(a) for a in loop._history["val accuracy"]]
    final = [v.numpy() for v in net.trainable_variables]
    return {
        "model": model, "side": "authors", "seed": int(seed), "epochs": epochs,
        "best_test_accuracy": float(loop.best_accuracy),
        "last_test_accuracy": history[-1],
        "test_accuracy_history": history,
        "evaluations_every_steps": _NOTEBOOK_COMMON["validation_freq"],
        "initial_nonzero_fraction": nonzero,
        "initial_nonzero_overall": float(sum(np.count_nonzero(w) for w in kernels)
                                         / sum(w.size for w in kernels)),
        "final_values": [sorted(float(u) for u in np.unique(w))[:4] for w in final],
        "n_train": len(x_train), "wall_time_s": wall,
    }


def our_run(model: str, seed: int, *, data_dir=None, epochs: int | None = None,
            train_fraction: float = 1.0, shared_keep=None) -> dict:
    """F1 or F2 trained by :func:`laperm.experiment.run` at the paper's config.

    Ours: 55000 training images (5000 held out to choose the epoch), F1 keeping
    0.6 of the weights (the released ``F1.h5`` keeps 59.8 %), F2 keeping 1/15,
    1/7, 1/3; accuracy measured on synchronised weights after every epoch.

    Args:
        model: ``"f1"`` or ``"f2"``.
        seed: the seed.
        data_dir: folder with ``mnist.npz``.
        epochs: fewer epochs than the paper (quick checks).
        train_fraction: share of the training set (quick checks).
        shared_keep: another kept fraction (e.g. the notebook's 4/7 for F1).

    Returns:
        A JSON-able dict with ``test_accuracy_at_best_val`` (ours, honest),
        ``best_test_accuracy`` (the best epoch chosen on the test set, the
        authors' protocol, per epoch), ``last_test_accuracy``, the history.
    """
    changes = {"seed": seed, "train_fraction": train_fraction}
    if epochs:
        changes["epochs"] = int(epochs)
    if shared_keep is not None:
        changes["shared_keep"] = shared_keep
    config = paper_config(model, **changes)
    history, result = run(config, None, data_dir=data_dir, progress=False)
    table = result["init_tables"].get("shared_value", [])
    sizes = [row["size"] for row in table]
    nonzero = [row["nonzero"] for row in table]
    return {
        "model": model, "side": "ours" if shared_keep is None else "ours_keep",
        "seed": int(seed), "epochs": int(config.epochs),
        "best_test_accuracy": float(history["test_accuracy"].max()),
        "last_test_accuracy": float(result["final_test_accuracy"]),
        "test_accuracy_at_best_val": result["test_accuracy_at_best_val"],
        "test_accuracy_history": [float(a) for a in history["test_accuracy"]],
        "evaluations_every_steps": int(math.ceil(result["scale"]["n_train"]
                                                 / config.batch_size)),
        "initial_nonzero_fraction": [n / s for n, s in zip(nonzero, sizes)],
        "initial_nonzero_overall": sum(nonzero) / sum(sizes) if sizes else None,
        "shared_keep": config.shared_keep,
        "n_train": int(result["scale"]["n_train"]), "wall_time_s": result["wall_time_s"],
        "config_hash": result["config_hash"],
    }


SIDE_SETTINGS = {
    "authors": ("their LaPermTrainLoop + agnosticize at the notebook's settings: 60000 "
                "training images, F1 keeps 4/7 (57.1 %) of the weights, F2 1/15, 1/7, 1/3; "
                "test accuracy every 250 steps, the best one kept (chosen on the test set)"),
    "ours": ("laperm.experiment.run(paper_config(...)): 55000 training images (5000 held out "
             "to choose the epoch), F1 keeps 0.6 (the published F1.h5 keeps 59.8 %), F2 1/15, "
             "1/7, 1/3; test accuracy after every epoch on synchronised weights"),
    "ours_keep": ("as 'ours' but F1 keeps 4/7 of the weights, the authors' notebook's "
                  "fraction"),
}

METRICS = {
    "best_test_accuracy": "best test accuracy over the evaluations (chosen on the test set: "
                          "the notebook's number; authors every 250 steps, ours every epoch)",
    "last_test_accuracy": "test accuracy of the last evaluation (authors: the last "
                          "250-step evaluation; ours: the end of training)",
    "test_accuracy_at_best_val": "ours only: test accuracy at the epoch chosen on the "
                                 "held-out validation split",
}


def summarise(rows: Iterable[dict]) -> pd.DataFrame:
    """Mean, sd and each seed per (model, side, metric) of :func:`distribution` rows."""
    frame = pd.DataFrame(list(rows))
    out = []
    for (model, side), group in frame.groupby(["model", "side"], sort=False):
        for metric in METRICS:
            if metric not in group or group[metric].isna().all():
                continue
            values = [float(v) for v in group[metric]]
            out.append({"model": model, "side": side, "metric": metric, "n": len(values),
                        "mean": statistics.fmean(values),
                        "sd": statistics.stdev(values) if len(values) > 1 else float("nan"),
                        "seeds": dict(zip((int(s) for s in group["seed"]), values))})
    return pd.DataFrame(out)


def distribution(seeds: Sequence[int] = (0, 1, 2), models: Sequence[str] = ("f1", "f2"), *,
                 data_dir=None, out_dir: str | os.PathLike | None = None,
                 epochs: int | None = None, train_size: int | None = None,
                 include_notebook_keep: bool = True, code: AuthorsCode | None = None,
                 progress: bool = False) -> dict:
    """F1 and F2, the authors' code against ours, over seeds (Section 5.5).

    Args:
        seeds: the seeds of each side.
        models: ``"f1"`` and/or ``"f2"``.
        data_dir: folder with ``mnist.npz``.
        out_dir: write ``distribution.json`` and ``distribution.csv`` (one row
            per model, side and seed) there; None writes nothing.
        epochs: fewer epochs than the notebook/paper (quick checks only).
        train_size: fewer training images on the authors' side, and the same
            share on ours (quick checks only).
        include_notebook_keep: also run ours at the notebook's kept fraction
            (F1: 4/7).
        code: the loaded authors' code.
        progress: print a line per run.

    Returns:
        The record: settings of each side, every run, the summary table and
        the environment.
    """
    code = code or load_authors_code()
    fraction = 1.0 if not train_size else min(1.0, train_size / 55000)
    rows = []
    for model in models:
        for seed in seeds:
            runs = [("authors", functools.partial(
                        authors_notebook_run, model, seed, data_dir=data_dir, epochs=epochs,
                        train_size=train_size, code=code)),
                    ("ours", functools.partial(our_run, model, seed, data_dir=data_dir,
                                               epochs=epochs, train_fraction=fraction))]
            if include_notebook_keep and model == "f1":
                runs.append(("ours_keep", functools.partial(
                    our_run, model, seed, data_dir=data_dir, epochs=epochs,
                    train_fraction=fraction, shared_keep=4 / 7)))
            for side, fn in runs:
                row = fn()
                rows.append(row)
                if progress:
                    print(f"[crosscheck] {model} {side} seed {seed}: best test "
                          f"{row['best_test_accuracy']:.4f}, last {row['last_test_accuracy']:.4f}"
                          f" ({row['wall_time_s']:.0f} s)", flush=True)
    summary = summarise(rows)
    record = {
        "what": "F1 and F2 (Section 5.5) trained by the authors' code and by ours, over seeds",
        "scale": "notebook scale" if not (epochs or train_size) else
                 f"reduced: epochs={epochs}, train_size={train_size}",
        "sides": SIDE_SETTINGS, "metrics": METRICS,
        "notebook_settings": {m: {**NOTEBOOK_SETTINGS[m], **_NOTEBOOK_COMMON} for m in models},
        "seeds": [int(s) for s in seeds],
        "runs": rows,
        "summary": json.loads(summary.to_json(orient="records")),
        "authors_code": code.describe(),
        **environment_info(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "distribution.json", record)
        table = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, list)}
                              for r in rows])
        table.to_csv(out / "distribution.csv", index=False)
    return record


def distribution_table(record: dict, metric: str = "best_test_accuracy") -> pd.DataFrame:
    """One row per model and side: mean, sd and each seed of ``metric`` (for a page)."""
    rows = []
    for item in record["summary"]:
        if item["metric"] != metric:
            continue
        row = {"model": item["model"].upper(), "side": item["side"], "mean": item["mean"],
               "sd": item["sd"]}
        row.update({f"seed {s}": v for s, v in item["seeds"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Records and command line
# --------------------------------------------------------------------------


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_json(path, payload, default=_json_default)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple, Path)):
        return list(obj) if not isinstance(obj, Path) else str(obj)
    return str(obj)


def default_out_dir() -> Path:
    """``results/crosscheck`` of the project checkout."""
    return project_root() / "results" / "crosscheck"


def sync_record(code: AuthorsCode | None = None) -> dict:
    """The sync comparison as a JSON-able record (for ``sync.json``)."""
    code = code or load_authors_code()
    table = compare_sync(code=code)
    return {"what": "their synchronisation and ours from the same weights and theta_0 "
                    "(float32 bits compared)",
            "all_identical": bool(table["identical"].all()),
            "table": json.loads(table.to_json(orient="records")),
            "differences": json.loads(sync_differences(code).to_json(orient="records")),
            "authors_code": code.describe(), **environment_info()}


#: The training comparisons of ``python -m laperm.crosscheck training``.
TRAINING_RUNS = (
    dict(model="f1", syncs=4, matching=False),
    dict(model="f1", syncs=4, matching=True),
    dict(model="f2", syncs=4, matching=False),
    dict(model="f2", syncs=4, matching=True),
    dict(model="conv7", syncs=3, matching=True, dropout=True),
    dict(model="conv7", syncs=3, matching=False, dropout=False),
    dict(model="conv7", syncs=3, matching=True, dropout=False),
)


def training_record(runs=TRAINING_RUNS, data_dir=None, code: AuthorsCode | None = None) -> dict:
    """The training comparisons as a JSON-able record (for ``training.json``)."""
    code = code or load_authors_code()
    comparisons = []
    for spec in runs:
        start = time.perf_counter()
        result = compare_training(**spec, data_dir=data_dir, code=code).to_dict()
        result["wall_time_s"] = time.perf_counter() - start
        comparisons.append(result)
    return {"what": "the authors' LaPermTrainLoop and model.fit with laperm.LaPerm from the "
                    "same theta_0 on the same batches: weights compared position by position",
            "comparisons": comparisons, "authors_code": code.describe(), **environment_info()}


def training_table(record: dict) -> pd.DataFrame:
    """One row per comparison and step of ``training.json`` (for a page)."""
    rows = []
    for c in record["comparisons"]:
        s = c["settings"]
        for r in c["table"]:
            rows.append({"model": c["model"], "k": s["sync_period"],
                         "loss": "matching" if s["matching_loss"] else "Keras mean",
                         "dropout": s["dropout"], **r})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m laperm.crosscheck {sync,training,distribution}``."""
    parser = argparse.ArgumentParser(
        prog="python -m laperm.crosscheck",
        description="Run the authors' LaPerm beside ours and write the records.")
    parser.add_argument("--authors-code", help=f"the authors' repository (else ${ENV_VAR}, "
                                               "else ../shared/reference/authors-code)")
    parser.add_argument("--data-dir", help="folder with mnist.npz (else $LAPERM_DATA_DIR)")
    parser.add_argument("--out", help="output folder (default results/crosscheck)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="their sync and ours on the same inputs")
    sub.add_parser("training", help="F1 and Conv7 trained side by side, first syncs")
    dist = sub.add_parser("distribution", help="F1/F2 over seeds, both sides")
    dist.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    dist.add_argument("--models", nargs="+", default=["f1", "f2"], choices=["f1", "f2"])
    dist.add_argument("--epochs", type=int, help="fewer epochs (quick check, not a record)")
    dist.add_argument("--train-size", type=int, help="fewer training images (quick check)")
    args = parser.parse_args(argv)
    try:
        code = load_authors_code(args.authors_code)
    except CrossCheckUnavailable as exc:
        print(f"laperm.crosscheck: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "sync":
        record = sync_record(code)
        _write_json(out / "sync.json", record)
        pd.DataFrame(record["table"]).to_csv(out / "sync.csv", index=False)
        print(pd.DataFrame(record["table"]).to_string(index=False))
        print(pd.DataFrame(record["differences"]).to_string(index=False))
    elif args.command == "training":
        record = training_record(data_dir=args.data_dir, code=code)
        _write_json(out / "training.json", record)
        table = training_table(record)
        table.to_csv(out / "training.csv", index=False)
        print(table.to_string(index=False))
    else:
        record = distribution(args.seeds, args.models, data_dir=args.data_dir, out_dir=out,
                              epochs=args.epochs, train_size=args.train_size, code=code,
                              progress=True)
        print(distribution_table(record).to_string(index=False))
    print(f"[crosscheck] wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
