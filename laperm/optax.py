"""LaPerm as an optax ``GradientTransformation`` (JAX).

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 4 (Algorithm 1).
The same method as :class:`laperm.LaPerm` (Keras), for JAX users::

    import optax, laperm.optax
    tx = laperm.optax.laperm(optax.adam(1e-3), sync_period=20)
    state = tx.init(params)                    # sorted theta_0 is taken here
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    eval_params = laperm.optax.synchronised_params(state, params)

This module needs only JAX and optax (``pip install "laperm[optax]"``): no Keras,
no TensorFlow.

**Weight vectors.**  The parameters are read in the layout of Flax and Haiku
(and Keras): the last axis of a kernel indexes the output units, so a Dense
kernel ``(in, out)`` has ``out`` vectors (its columns) and a Conv kernel
``(kh, kw, cin, cout)`` has ``cout`` vectors of ``kh*kw*cin`` values, taken in
that order (ties are broken as :class:`laperm.LaPerm` breaks them).  A 1-D leaf
is one vector.  By default the leaves with 2 or more dimensions are permuted
and 1-D leaves (biases, norm scales and offsets) are not; ``mask`` chooses
otherwise.

**The update.**  Write ``p`` for the parameters given to ``update`` and ``u``
for the inner transformation's updates.  Between syncs the updates are ``u``.
At every ``sync_period``-th update the parameters after the step would be
``q = p + u``; the sync replaces each permuted vector of ``q`` by its sorted
initial values re-ordered by the ranks of ``q``, giving ``s``, so the update
returned for a permuted leaf is ``s - p`` and ``optax.apply_updates`` gives
``p + (s - p)``.  That is ``s`` exactly when ``s - p`` is computed without
rounding (``s`` zero, or within a factor 2 of ``p``: Sterbenz's lemma) and
within one rounding of ``s`` otherwise, as with optax's own lookahead.
:func:`synchronised_params` gives ``s`` exactly, from the state and the
parameters.  The inner state is never reset.

**Non-finite weights.**  A sync that meets NaN or inf in ``q`` is skipped (the
updates are the inner ones), is not counted, is tried again at the next update,
and the first such update is recorded in ``state.nonfinite_step``;
:func:`check_finite` raises :class:`laperm.NonFiniteWeightsError` outside
``jit``, as :class:`laperm.LaPerm` does.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from laperm.exceptions import NonFiniteWeightsError

__all__ = ["LaPermState", "NonFiniteWeightsError", "check_finite", "default_mask", "laperm",
           "permute_to_ranks", "sorted_rows", "synchronised_params", "to_rows", "from_rows"]


class LaPermState(NamedTuple):
    """State of :func:`laperm`.

    Attributes:
        inner_state: the inner transformation's state (never reset by a sync).
        sorted0: like the parameters: for a permuted leaf its sorted initial
            vectors as rows ``(n_vectors, length)``, else ``optax.MaskedNode()``.
        count: updates taken (int32).
        steps_since_sync: updates since the last sync (int32).
        sync_count: syncs done (int32).
        nonfinite_step: the update (counted from 1) whose sync first met NaN or
            inf, -1 if none (int32).
    """

    inner_state: Any
    sorted0: Any
    count: jax.Array
    steps_since_sync: jax.Array
    sync_count: jax.Array
    nonfinite_step: jax.Array


# ---------------------------------------------------------------- the maths
def to_rows(x: jax.Array) -> jax.Array:
    """The row view ``(n_vectors, length)``: row ``j`` is the vector of output unit ``j``."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(-1, x.shape[-1]).T


def from_rows(rows: jax.Array, shape) -> jax.Array:
    """Inverse of :func:`to_rows`."""
    shape = tuple(shape)
    if len(shape) <= 1:
        return rows.reshape(shape)
    return rows.T.reshape(shape)


def sorted_rows(x: jax.Array) -> jax.Array:
    """Each weight vector of ``x`` sorted ascending, as rows (``sorted0``)."""
    return jnp.sort(to_rows(jnp.asarray(x)), axis=-1)


def permute_to_ranks(x: jax.Array, sorted0: jax.Array) -> jax.Array:
    """Each vector of ``x`` receives its sorted initial values by rank.

    With ``order = argsort(w)`` (stable: equal entries keep their order of
    position), the value that belongs at ``order[i]`` is ``sorted0[i]``: one
    argsort and one scatter per vector, instead of ``argsort(argsort(w))``.
    """
    rows = to_rows(x)
    order = jnp.argsort(rows, axis=-1, stable=True)
    row_index = jnp.arange(rows.shape[0])[:, None]
    new_rows = jnp.zeros_like(rows).at[row_index, order].set(
        sorted0.astype(rows.dtype), unique_indices=True)
    return from_rows(new_rows, x.shape)


# ----------------------------------------------------------- the transform
def default_mask(params) -> Any:
    """The leaves permuted by default: those with 2 or more dimensions (kernels)."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _validate_sync_period(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`sync_period` must be a positive integer; received {value!r} "
                         f"of type {type(value).__name__}.")
    return int(value)


def _is_masked(x) -> bool:
    return isinstance(x, optax.MaskedNode)


def laperm(inner: optax.GradientTransformation, sync_period: int,
           mask: Any | Callable[[Any], Any] | None = None) -> optax.GradientTransformation:
    """Lookahead Permutation: train by reconnecting the initial weights.

    Args:
        inner: the transformation that takes every step (``optax.adam(1e-3)``).
        sync_period: k, the number of updates between syncs (a positive int).
        mask: which leaves are permuted: a pytree of booleans with the
            structure of the parameters, or a function of the parameters that
            returns one (as ``optax.masked`` takes); default
            :func:`default_mask` (leaves of 2 or more dimensions).  0-D leaves
            are never permuted.

    Returns:
        An ``optax.GradientTransformation``.  ``init(params)`` takes theta_0 from
        ``params`` (after any pruning); ``update(grads, state, params)`` needs
        the parameters.

    Raises:
        ValueError: ``sync_period`` not a positive integer; at ``init``, a mask
            that does not match the parameters; at ``update``, no ``params``.
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError("laperm.optax.laperm wraps an optax.GradientTransformation (e.g. "
                        f"optax.adam(1e-3)); received {type(inner).__name__}.")
    k = _validate_sync_period(sync_period)

    def init_fn(params) -> LaPermState:
        chosen = mask(params) if callable(mask) else (default_mask(params) if mask is None
                                                       else mask)
        try:
            flags = jax.tree.map(lambda m, p: bool(m) and jnp.ndim(p) > 0, chosen, params)
        except ValueError as exc:
            raise ValueError(
                "laperm: `mask` must be a pytree of booleans with the structure of the "
                f"parameters: {exc}") from None
        sorted0 = jax.tree.map(lambda f, p: sorted_rows(p) if f else optax.MaskedNode(),
                               flags, params)
        zero = jnp.zeros((), jnp.int32)
        return LaPermState(inner.init(params), sorted0, zero, zero, zero,
                           jnp.full((), -1, jnp.int32))

    def update_fn(updates, state: LaPermState, params=None):
        if params is None:
            raise ValueError("laperm.optax.laperm needs the parameters: "
                             "update(grads, state, params).")
        inner_updates, inner_state = inner.update(updates, state.inner_state, params)
        steps = state.steps_since_sync + 1
        count = state.count + 1

        def sync(_):
            # q = p + u, then s = sorted0 by the ranks of q, returned as s - p.
            stepped = optax.apply_updates(params, inner_updates)
            finite = jnp.all(jnp.array([True] + [
                jnp.all(jnp.isfinite(q)) for s0, q in zip(
                    jax.tree.leaves(state.sorted0, is_leaf=_is_masked),
                    jax.tree.leaves(stepped)) if not _is_masked(s0)]))

            def leaf(s0, p, q, u):
                if _is_masked(s0):
                    return u
                return jnp.where(finite, (permute_to_ranks(q, s0) - p).astype(u.dtype), u)

            new = jax.tree.map(leaf, state.sorted0, params, stepped, inner_updates,
                               is_leaf=_is_masked)
            return new, finite

        def no_sync(_):
            return inner_updates, jnp.asarray(True)

        new_updates, finite = jax.lax.cond(steps >= k, sync, no_sync, None)
        synced = (steps >= k) & finite
        failed = (steps >= k) & ~finite
        nonfinite = jnp.where(failed & (state.nonfinite_step < 0), count, state.nonfinite_step)
        return new_updates, LaPermState(
            inner_state, state.sorted0, count,
            jnp.where(synced, 0, steps).astype(jnp.int32),
            state.sync_count + synced.astype(jnp.int32), nonfinite.astype(jnp.int32))

    return optax.GradientTransformation(init_fn, update_fn)


def _laperm_state(state) -> LaPermState:
    """The :class:`LaPermState` in ``state`` (itself, or inside a chain's tuple)."""
    found = _find(state)
    if found is None:
        raise ValueError("Expected the state of laperm.optax.laperm (a LaPermState, possibly "
                         f"inside an optax.chain); received {type(state).__name__}.")
    return found


def _find(state):
    if isinstance(state, LaPermState):
        return state
    if isinstance(state, (tuple, list)) and not hasattr(state, "_fields"):
        for x in state:
            found = _find(x)
            if found is not None:
                return found
    return None


def synchronised_params(state, params):
    """The parameters a sync would give now: each permuted vector gets sorted theta_0 by rank.

    Pure (works under ``jit``); evaluate LaPerm on a permutation of theta_0
    without changing the training state.  Right after a sync it returns the
    synced values exactly.

    Args:
        state: the state of :func:`laperm` (or an ``optax.chain`` state holding it).
        params: the current parameters.
    """
    s0_tree = _laperm_state(state).sorted0
    return jax.tree.map(lambda s0, p: p if _is_masked(s0) else permute_to_ranks(p, s0),
                        s0_tree, params, is_leaf=_is_masked)


def check_finite(state) -> None:
    """Raise :class:`laperm.NonFiniteWeightsError` if a sync met NaN or inf (outside ``jit``)."""
    step = int(_laperm_state(state).nonfinite_step)
    if step >= 0:
        raise NonFiniteWeightsError(
            f"LaPerm: non-finite weights (NaN or inf) at the sync of update {step}: the sync "
            "was skipped and not counted, so the parameters are not a permutation of theta_0. "
            "Lower the learning rate or check the data.")
