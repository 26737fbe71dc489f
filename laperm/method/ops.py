"""The pure maths of LaPerm, in backend-agnostic ``keras.ops``.

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 4 (Algorithm 1).

A **weight vector** is everything that feeds one output unit.  One rule covers
variables of every rank:

* rank >= 2 (Dense ``(in, out)``, Conv ``(kh, kw, cin, cout)``, ...): the last
  axis indexes output units, so the vectors are the columns of
  ``reshape(w, (-1, w.shape[-1]))``;
* rank 1 (a bias, BatchNorm gamma/beta): the whole variable is one vector;
* rank 0: a single value, a vector of length one (a permutation cannot
  change it).

Internally vectors are stored as *rows* of an ``(n_vectors, length)`` matrix
("row view"), because sorting along the last axis is what every backend does
best.

The synchronisation ("reconnection") step replaces each vector ``w`` by the
sorted initial values ``sorted0`` re-ordered by the ranks of ``w``: the i-th
smallest entry of ``w`` receives the i-th smallest initial value.  The
textbook way is ``take_along_axis(sorted0, argsort(argsort(w)))`` (two sorts);
:func:`permute_to_ranks` does it with one ``argsort`` and a scatter.  Ties in
``w`` are broken by position (a stable sort), so the result is deterministic.
"""

from __future__ import annotations

import math

from keras import ops


def vector_count(shape) -> int:
    """Number of weight vectors in a variable of the given shape."""
    shape = tuple(int(d) for d in shape)
    return shape[-1] if len(shape) >= 2 else 1


def vector_length(shape) -> int:
    """Number of values in each weight vector of a variable of ``shape``."""
    shape = tuple(int(d) for d in shape)
    size = math.prod(shape)
    count = vector_count(shape)
    return size // count if count else 0


def to_rows(x):
    """Reshape a variable to its row view ``(n_vectors, length)``.

    Args:
        x: a tensor of any rank.

    Returns:
        A tensor whose row ``j`` is the weight vector of output unit ``j``.
    """
    shape = tuple(x.shape)
    count, length = vector_count(shape), vector_length(shape)
    if len(shape) >= 2:
        return ops.transpose(ops.reshape(x, (length, count)))
    return ops.reshape(x, (1, length))


def from_rows(rows, shape):
    """Inverse of :func:`to_rows`: back to the variable's own ``shape``."""
    shape = tuple(int(d) for d in shape)
    if len(shape) >= 2:
        return ops.reshape(ops.transpose(rows), shape)
    return ops.reshape(rows, shape)


def sorted_rows(x):
    """Each weight vector of ``x`` sorted ascending, as rows (``sorted0``)."""
    return ops.sort(to_rows(x), axis=-1)


def permute_to_ranks(x, sorted_vectors):
    """Reconnect: give each vector of ``x`` its sorted initial values by rank.

    One stable ``argsort`` per vector and one scatter: if ``order`` lists the
    positions of ``w`` from smallest to largest, the value that belongs at
    ``order[i]`` is ``sorted_vectors[i]``.

    Args:
        x: current weights (any rank).
        sorted_vectors: ``(n_vectors, length)`` rows, each sorted ascending,
            as made by :func:`sorted_rows` from the initial weights.

    Returns:
        A tensor shaped like ``x`` holding, in every vector, exactly the
        multiset of that vector's initial values.
    """
    rows = to_rows(x)
    count, length = rows.shape
    order = ops.argsort(rows, axis=-1)  # stable on every Keras backend we test
    offsets = ops.expand_dims(ops.arange(count, dtype=order.dtype) * length, 1)
    flat_positions = ops.reshape(order + offsets, (-1, 1))
    values = ops.reshape(ops.cast(sorted_vectors, x.dtype), (-1,))
    # The positions are a permutation, so an update of zeros is the scatter: Keras's torch
    # backend turns ops.scatter into a Python loop over every element (Conv7's evaluation of
    # synchronised weights: 11 -> 3 s of CPU), scatter_update into one index_put.
    new_rows = ops.reshape(
        ops.scatter_update(ops.zeros((count * length,), values.dtype), flat_positions, values),
        (count, length),
    )
    return from_rows(new_rows, x.shape)


def permute_to_ranks_double_argsort(x, sorted_vectors):
    """Reference implementation with two sorts (``argsort(argsort(w))``).

    Same result as :func:`permute_to_ranks`; kept for tests and benchmarks.
    """
    rows = to_rows(x)
    ranks = ops.argsort(ops.argsort(rows, axis=-1), axis=-1)
    new_rows = ops.take_along_axis(ops.cast(sorted_vectors, x.dtype), ranks, axis=-1)
    return from_rows(new_rows, x.shape)


def vector_ranks(x):
    """Stable ranks of each entry within its weight vector, in the row view."""
    rows = to_rows(x)
    return ops.argsort(ops.argsort(rows, axis=-1), axis=-1)


def all_finite(x):
    """A scalar boolean tensor: ``True`` when every entry of ``x`` is finite."""
    return ops.all(ops.isfinite(x))
