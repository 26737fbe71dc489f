"""The same sync (Section 4): the authors' synchronisation and ours on the same inputs."""


from __future__ import annotations

import contextlib
import functools
import math
import types
from collections.abc import Sequence

import numpy as np
import pandas as pd

from laperm.crosscheck.authors import AuthorsCode, load_authors_code
from laperm.method.optimizer import LaPerm, NonFiniteWeightsError

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
      sort), ours refuses with :class:`laperm.method.optimizer.NonFiniteWeightsError`
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
