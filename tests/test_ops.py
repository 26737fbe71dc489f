"""Property tests of the reconnection maths against a NumPy reference (SPEC 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from keras import ops

from laperm.method import ops as lops

SHAPES = st.one_of(
    hnp.array_shapes(min_dims=1, max_dims=1, min_side=1, max_side=40),
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=4),  # conv kernels
)


def _weights(shape):
    # Few distinct values -> many ties; zeros included (pruned weights).
    return hnp.arrays(
        np.float32,
        shape,
        elements=st.one_of(
            st.sampled_from([0.0, -0.5, 0.5, 1.0]),
            st.floats(-3, 3, width=32, allow_subnormal=False)  # XLA flushes subnormals,
        ),
    )


def numpy_rows(w):
    w = np.asarray(w)
    if w.ndim >= 2:
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(1, -1)


def numpy_reconnect(w, theta0):
    """Plain NumPy double-argsort reference of one LaPerm sync."""
    rows, rows0 = numpy_rows(w), numpy_rows(theta0)
    ranks = np.argsort(np.argsort(rows, axis=-1, kind="stable"), axis=-1, kind="stable")
    new_rows = np.take_along_axis(np.sort(rows0, axis=-1), ranks, axis=-1)
    if w.ndim >= 2:
        return new_rows.T.reshape(w.shape)
    return new_rows.reshape(w.shape)


@st.composite
def weight_pairs(draw):
    shape = draw(SHAPES)
    return draw(_weights(shape)), draw(_weights(shape))


@settings(max_examples=60, deadline=None)
@given(weight_pairs())
def test_sync_restores_each_vectors_initial_multiset(pair):
    w, theta0 = pair
    out = ops.convert_to_numpy(lops.permute_to_ranks(w, lops.sorted_rows(theta0)))
    assert out.shape == w.shape
    np.testing.assert_array_equal(
        np.sort(numpy_rows(out), axis=-1), np.sort(numpy_rows(theta0), axis=-1)
    )


@settings(max_examples=60, deadline=None)
@given(weight_pairs())
def test_one_sort_scatter_agrees_with_numpy_double_argsort(pair):
    w, theta0 = pair
    expected = numpy_reconnect(w, theta0)
    got = ops.convert_to_numpy(lops.permute_to_ranks(w, lops.sorted_rows(theta0)))
    np.testing.assert_array_equal(got, expected)
    got2 = ops.convert_to_numpy(
        lops.permute_to_ranks_double_argsort(w, lops.sorted_rows(theta0))
    )
    np.testing.assert_array_equal(got2, expected)


@settings(max_examples=40, deadline=None)
@given(_weights((5, 7)))
def test_sync_of_theta0_onto_itself_is_identity(theta0):
    out = ops.convert_to_numpy(lops.permute_to_ranks(theta0, lops.sorted_rows(theta0)))
    np.testing.assert_array_equal(out, theta0)


def test_ties_are_broken_by_position():
    w = np.zeros((4, 1), np.float32)  # all tied: order by index
    theta0 = np.array([[3.0], [1.0], [2.0], [0.0]], np.float32)
    out = ops.convert_to_numpy(lops.permute_to_ranks(w, lops.sorted_rows(theta0)))
    np.testing.assert_array_equal(out[:, 0], [0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "shape,count,length",
    [((), 1, 1), ((7,), 1, 7), ((3, 5), 5, 3), ((3, 3, 2, 4), 4, 18), ((2, 2, 2, 2, 3), 3, 16)],
)
def test_one_rule_for_every_rank(shape, count, length):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    rows = ops.convert_to_numpy(lops.to_rows(x))
    assert rows.shape == (count, length)
    np.testing.assert_array_equal(ops.convert_to_numpy(lops.from_rows(rows, shape)), x)
    if len(shape) >= 2:  # row j is what feeds output unit j
        np.testing.assert_array_equal(rows[-1], x[..., -1].reshape(-1))
