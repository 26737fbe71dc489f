"""A NumPy reference of LaPerm's sync and one scenario run in every framework.

Used by tests/test_torch_laperm.py and tests/test_optax_laperm.py, which compare
laperm.torch, laperm.optax and laperm.LaPerm (Keras) with it.  The reference
is the textbook form, ``sorted0[argsort(argsort(w))]`` with stable sorts, in
the Keras layout (the last axis of a kernel indexes the vectors); no laperm code.

The scenario is built so that its arithmetic is exact in float32 in every
framework: every value (weights, gradients, learning rate 1/2) is a multiple
of 1/16 of modest size, so the inner SGD step ``w - g / 2`` never rounds and
the frameworks can be compared with ``==``.  theta_0 has zeros and repeated
values, some gradients are zero and the weights land on equal values, so the
syncs meet ties in the current weights that map to different initial values:
the stable tie-breaking by position is tested, not just the multisets.
"""

from __future__ import annotations

import numpy as np

#: Learning rate of the scenario's SGD (a power of two: no rounding).
LEARNING_RATE = 0.5
SYNC_PERIOD = 3
STEPS = 9

#: Keras-layout shapes: a Dense kernel (in, out) and a Conv2D kernel (kh, kw, cin, cout).
SHAPES = {"dense": (6, 4), "conv": (3, 3, 2, 4)}


def rows(w: np.ndarray) -> np.ndarray:
    """Keras layout: the vectors are the columns of ``reshape(w, (-1, last))``."""
    w = np.asarray(w)
    if w.ndim <= 1:
        return w.reshape(1, -1)
    return w.reshape(-1, w.shape[-1]).T


def unrows(r: np.ndarray, shape) -> np.ndarray:
    return r.reshape(shape) if len(shape) <= 1 else r.T.reshape(shape)


def reference_sync(w: np.ndarray, theta0: np.ndarray) -> np.ndarray:
    """Each vector of ``w`` gets the sorted values of the same vector of ``theta0`` by rank."""
    r = rows(w)
    ranks = np.argsort(np.argsort(r, axis=1, kind="stable"), axis=1, kind="stable")
    sorted0 = np.sort(rows(theta0), axis=1)
    return unrows(np.take_along_axis(sorted0, ranks, axis=1), np.shape(w)).astype(w.dtype)


def scenario(seed: int = 0):
    """theta_0 and the gradient of every step, per variable (Keras layout, float32)."""
    rng = np.random.default_rng(seed)
    theta0, grads = {}, {}
    for name, shape in SHAPES.items():
        # Values k/16 for k in -8..8: many repeats, and zeros (a pruned share).
        w = rng.integers(-8, 9, size=shape) / 16
        w[rng.random(shape) < 0.3] = 0.0
        theta0[name] = w.astype(np.float32)
        g = rng.integers(-4, 5, size=(STEPS, *shape)) / 16
        g[rng.random((STEPS, *shape)) < 0.4] = 0.0  # untouched entries keep their ties
        grads[name] = g.astype(np.float32)
    return theta0, grads


def is_exact(values) -> bool:
    """The scenario's promise: every value stays a multiple of 1/32 (no rounding anywhere)."""
    return all(np.array_equal(v * 32, np.round(v * 32)) for v in values)


def reference_run(theta0: dict, grads: dict):
    """The weights after every sync of the scenario: ``[{name: weights}, ...]``."""
    w = {n: v.copy() for n, v in theta0.items()}
    after_syncs = []
    for step in range(STEPS):
        for n in w:
            w[n] = (w[n] - np.float32(LEARNING_RATE) * grads[n][step]).astype(np.float32)
        if (step + 1) % SYNC_PERIOD == 0:
            w = {n: reference_sync(v, theta0[n]) for n, v in w.items()}
            after_syncs.append({n: v.copy() for n, v in w.items()})
    return after_syncs


def keras_run(theta0: dict, grads: dict):
    """The scenario under laperm.LaPerm (Keras, this environment's backend): weights after
    every sync."""
    import keras

    import laperm

    variables = [keras.Variable(theta0[n], name="kernel") for n in SHAPES]
    opt = laperm.LaPerm(keras.optimizers.SGD(LEARNING_RATE), sync_period=SYNC_PERIOD)
    opt.build(variables)
    after_syncs = []
    for step in range(STEPS):
        opt.apply([keras.ops.convert_to_tensor(grads[n][step]) for n in SHAPES], variables)
        if (step + 1) % SYNC_PERIOD == 0:
            after_syncs.append({n: keras.ops.convert_to_numpy(v.value)
                                for n, v in zip(SHAPES, variables)})
    return after_syncs


def ties_met(theta0: dict, grads: dict) -> int:
    """How many pre-sync ties in the scenario map to different initial values (> 0 wanted)."""
    w = {n: v.copy() for n, v in theta0.items()}
    count = 0
    for step in range(STEPS):
        for n in w:
            w[n] = w[n] - np.float32(LEARNING_RATE) * grads[n][step]
        if (step + 1) % SYNC_PERIOD == 0:
            for n, v in w.items():
                r = rows(v)
                s0 = np.sort(rows(theta0[n]), axis=1)
                order = np.argsort(r, axis=1, kind="stable")
                sr = np.take_along_axis(r, order, axis=1)
                tied = sr[:, 1:] == sr[:, :-1]
                count += int(np.sum(tied & (s0[:, 1:] != s0[:, :-1])))
            w = {n: reference_sync(v, theta0[n]) for n, v in w.items()}
    return count


def torch_layout(name: str, w: np.ndarray) -> np.ndarray:
    """A Keras-layout array in torch's layout: Linear ``(out, in)``, Conv ``(out, in, kh, kw)``."""
    return np.ascontiguousarray(w.T if w.ndim == 2 else w.transpose(3, 2, 0, 1))


def keras_layout(name: str, w: np.ndarray) -> np.ndarray:
    """Inverse of :func:`torch_layout`."""
    return np.ascontiguousarray(w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0))
