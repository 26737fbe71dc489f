"""Tests of laperm.analysis.profiles (Sections 2-4 of the paper): pure NumPy properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from laperm.analysis import profiles as P

SETTINGS = settings(max_examples=60, deadline=None)

# Shapes of rank 0..4 (rank 4 = conv kernel (kh, kw, cin, cout)).
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
# Few distinct values: many ties and zeros.
small_values = st.sampled_from([-1.5, -0.5, 0.0, 0.0, 0.25, 1.0, 2.0])


@st.composite
def tied_arrays(draw, shape=None):
    shape = draw(shapes) if shape is None else shape
    return draw(hnp.arrays(np.float32, shape, elements=small_values))


@st.composite
def permuted_pair(draw):
    """(theta0, theta) with theta a per-vector permutation of theta0."""
    theta0 = draw(tied_arrays())
    rows = P.weight_vectors(theta0)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    permuted = np.stack([row[rng.permutation(row.size)] for row in rows])
    return theta0, P.from_vectors(permuted, theta0.shape)


def _reference_ranks(w):
    rows = P.weight_vectors(w)
    return np.argsort(np.argsort(rows, axis=1, kind="stable"), axis=1, kind="stable")


# --------------------------------------------------------------------------- views


def test_weight_vectors_conventions():
    dense = np.arange(12.0).reshape(3, 4)  # (in, out)
    rows = P.weight_vectors(dense)
    assert rows.shape == (4, 3)
    np.testing.assert_array_equal(rows[1], dense[:, 1])
    conv = np.arange(2 * 2 * 3 * 5.0).reshape(2, 2, 3, 5)
    rows = P.weight_vectors(conv)
    assert rows.shape == (5, 12)
    np.testing.assert_array_equal(rows[2], conv[..., 2].reshape(-1))
    assert P.weight_vectors(np.arange(7.0)).shape == (1, 7)
    assert P.weight_vectors(np.float32(3.0)).shape == (1, 1)


@SETTINGS
@given(tied_arrays())
def test_from_vectors_inverts_weight_vectors(w):
    back = P.from_vectors(P.weight_vectors(w), w.shape)
    assert back.shape == w.shape
    np.testing.assert_array_equal(back, w)


@SETTINGS
@given(tied_arrays())
def test_sorted_profiles_rows_sorted(w):
    s = P.sorted_profiles(w)
    assert np.all(np.diff(s, axis=1) >= 0)
    np.testing.assert_array_equal(np.sort(P.weight_vectors(w), axis=1), s)


# --------------------------------------------------------------------------- ranks


@SETTINGS
@given(tied_arrays())
def test_ranks_match_stable_double_argsort(w):
    r = P.ranks(w)
    np.testing.assert_array_equal(r, _reference_ranks(w))
    rows = P.weight_vectors(w)
    assert r.shape == rows.shape
    np.testing.assert_array_equal(np.sort(r, axis=1),
                                  np.broadcast_to(np.arange(rows.shape[1]), rows.shape))


def test_ranks_ties_by_position():
    np.testing.assert_array_equal(P.ranks(np.array([1.0, 0.0, 1.0, 0.0])), [[2, 0, 3, 1]])


# --------------------------------------------------------------------------- permutations


@SETTINGS
@given(permuted_pair())
def test_permutation_round_trip(pair):
    theta0, theta = pair
    perm = P.permutation_from(theta0, theta)
    rows0, rows = P.weight_vectors(theta0), P.weight_vectors(theta)
    assert perm.shape == rows0.shape
    np.testing.assert_array_equal(np.take_along_axis(rows, perm, axis=1), rows0)
    np.testing.assert_array_equal(P.apply_permutation(theta0, perm), theta)
    assert P.is_permutation_of(theta0, theta)


@SETTINGS
@given(tied_arrays(), st.data())
def test_permutation_from_rejects_non_permutation(theta0, data):
    theta = theta0.copy().reshape(-1)
    i = data.draw(st.integers(0, theta.size - 1))
    theta[i] = theta[i] + np.float32(0.125)  # changes one vector's multiset
    theta = theta.reshape(theta0.shape)
    with pytest.raises(ValueError, match="not a per-vector permutation"):
        P.permutation_from(theta0, theta)
    with pytest.raises(ValueError, match="vector"):
        P.moved_fraction(theta0, theta)
    assert not P.is_permutation_of(theta0, theta)


def test_values_moving_across_vectors_is_not_a_permutation():
    theta0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    theta = np.array([[2.0, 1.0], [3.0, 4.0]])  # same layer multiset; 1 and 2 swap vectors
    with pytest.raises(ValueError, match=r"first: vector 0"):
        P.permutation_from(theta0, theta)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        P.permutation_from(np.zeros((2, 3)), np.zeros((3, 2)))


@SETTINGS
@given(permuted_pair())
def test_moved_fraction(pair):
    theta0, theta = pair
    assert P.moved_fraction(theta0, theta0) == 0.0
    assert np.all(P.moved_fraction(theta0, theta0, per_vector=True) == 0.0)
    f = P.moved_fraction(theta0, theta)
    per = P.moved_fraction(theta0, theta, per_vector=True)
    assert per.shape == (P.weight_vectors(theta0).shape[0],)
    assert 0.0 <= f <= 1.0
    assert f == pytest.approx(per.mean())
    assert (f > 0) == (not np.array_equal(theta0, theta))


def test_moved_fraction_simple():
    theta0 = np.array([1.0, 2.0, 3.0, 4.0])
    assert P.moved_fraction(theta0, np.array([2.0, 1.0, 3.0, 4.0])) == 0.5


def test_moved_connections():
    theta0 = np.array([[0.08, 0.0], [0.0, 0.08], [0.08, 0.08], [0.0, 0.0]])  # (4 in, 2 out)
    theta = np.array([[0.0, 0.0], [0.08, 0.08], [0.08, 0.08], [0.0, 0.0]])
    # vector 0: non-zeros at {0, 2} -> {1, 2}: 1 of 2 moved; vector 1: {1, 2} unchanged
    per = P.moved_connections(theta0, theta, per_vector=True)
    np.testing.assert_allclose(per, [0.5, 0.0])
    assert P.moved_connections(theta0, theta) == pytest.approx(0.25)
    assert P.moved_connections(theta0, theta0) == 0.0


# --------------------------------------------------------------------------- repermute


@SETTINGS
@given(st.data())
def test_repermute_preserves_multisets_and_follows_reference(data):
    theta0 = data.draw(tied_arrays())
    reference = data.draw(hnp.arrays(np.float64, theta0.shape,
                                     elements=st.floats(-3, 3, width=32)))
    out = P.repermute(theta0, reference)
    assert out.shape == theta0.shape and out.dtype == theta0.dtype
    np.testing.assert_array_equal(P.sorted_profiles(out), P.sorted_profiles(theta0))
    assert P.is_permutation_of(theta0, out)
    # the i-th smallest of the reference gets the i-th smallest of theta0
    rows_out = P.weight_vectors(out)
    rows_ref = P.weight_vectors(reference)
    order = np.argsort(rows_ref, axis=1, kind="stable")
    assert np.all(np.diff(np.take_along_axis(rows_out, order, axis=1), axis=1) >= 0)
    # idempotent, and equal to from_ranks(ranks(reference))
    np.testing.assert_array_equal(P.repermute(theta0, out), out)
    np.testing.assert_array_equal(P.from_ranks(theta0, P.ranks(reference)), out)


def test_from_ranks_subset_and_validation():
    theta0 = np.random.default_rng(0).normal(size=(6, 3))
    r = P.ranks(theta0)
    np.testing.assert_array_equal(P.from_ranks(theta0, r), theta0)
    np.testing.assert_array_equal(P.from_ranks(theta0, r[[2]], vectors=[2]),
                                  P.weight_vectors(theta0)[[2]])
    with pytest.raises(ValueError):
        P.from_ranks(theta0, np.zeros_like(r))


def test_repermute_model_lists():
    rng = np.random.default_rng(1)
    w0 = [rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(2, 2, 1, 2))]
    wt = [rng.normal(size=w.shape) for w in w0]
    out = P.repermute_model(w0, wt)
    assert P.is_permutation_of(w0[0], out[0]) and P.is_permutation_of(w0[2], out[2])
    np.testing.assert_array_equal(out[1], wt[1])  # bias: left to the inner optimizer
    out_all = P.repermute_model(w0, wt, predicate=lambda w: True)
    assert P.is_permutation_of(w0[1], out_all[1])
    with pytest.raises(ValueError):
        P.repermute_model(w0, wt[:2])


# --------------------------------------------------------------------------- similarity


def test_identical_sorted_vectors_score_perfectly():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    w = np.stack([rng.permutation(base) for _ in range(8)], axis=1)  # (50, 8)
    assert P.profile_similarity(w, "correlation") == pytest.approx(1.0)
    assert P.profile_similarity(w, "rms") == pytest.approx(1.0)
    np.testing.assert_allclose(P.profile_distances(w), 0.0, atol=1e-12)


def test_scaled_vectors_lower_rms_but_same_shape():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    scales = np.array([0.2, 0.5, 1.0, 2.0, 5.0])
    w = np.stack([s * rng.permutation(base) for s in scales], axis=1)
    assert P.profile_similarity(w, "rms") < 0.8
    # correlation sees shape only: scaled copies of one curve still correlate
    assert P.profile_similarity(w, "correlation") == pytest.approx(1.0)
    d = P.profile_distances(w)
    assert np.argmax(d) == 4 and 0.0 <= d.mean() <= 1.0


def test_differently_shaped_vectors_lower_correlation():
    rng = np.random.default_rng(0)
    n = 200
    same = np.stack([rng.permutation(np.linspace(-1, 1, n)) for _ in range(6)], axis=1)
    mixed = same.copy()
    mixed[:, :3] = rng.exponential(size=(n, 3)) - 1.0  # skewed shapes
    assert (P.profile_similarity(mixed, "correlation")
            < P.profile_similarity(same, "correlation") - 1e-3)
    per = P.vector_profile_similarity(mixed, "correlation")
    assert per.shape == (6,) and np.all(per <= 1.0)


def test_similarity_edge_cases():
    assert P.profile_similarity(np.ones((3, 4)), "correlation") == 1.0
    assert P.profile_similarity(np.ones((3, 4)), "rms") == 1.0
    assert P.profile_similarity(np.arange(5.0).reshape(1, 5), "correlation") == 1.0
    with pytest.raises(ValueError, match="method"):
        P.profile_similarity(np.ones((2, 2)), "cosine")


@SETTINGS
@given(tied_arrays())
def test_similarity_ranges_and_permutation_invariance(w):
    for method in ("correlation", "rms"):
        s = P.profile_similarity(w, method)
        assert -1.0 - 1e-9 <= s <= 1.0 + 1e-9
    assert 0.0 <= P.profile_distances(w).mean() <= 1.0 + 1e-9
    # LaPerm cannot change the scores: a per-vector permutation keeps them
    shuffled = P.repermute(w, np.random.default_rng(0).normal(size=w.shape))
    assert P.profile_similarity(shuffled, "rms") == pytest.approx(P.profile_similarity(w, "rms"))


# --------------------------------------------------------------------------- table


def test_layer_profile_table_on_keras_model():
    import keras

    model = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(3, 3, name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(4, name="dense"),
    ])
    table = P.layer_profile_table(model)
    assert list(table.columns) == ["name", "shape", "n_vectors", "vector_length", "std",
                                   "correlation", "rms_similarity"]
    assert len(table) == 2  # the two kernels; biases have ndim 1
    assert table["shape"].tolist() == [(3, 3, 1, 3), (48, 4)]
    assert table["n_vectors"].tolist() == [3, 4]
    assert table["vector_length"].tolist() == [9, 48]
    assert "kernel" in table["name"].iloc[0]
    assert table["correlation"].between(-1, 1).all()

    w0 = model.get_weights()
    full = P.layer_profile_table(model.get_weights(), baseline=w0, shuffled=True)
    assert {"correlation_init", "rms_similarity_init", "correlation_shuffled",
            "rms_similarity_shuffled"} <= set(full.columns)
    np.testing.assert_allclose(full["correlation"], full["correlation_init"])
    named = P.layer_profile_table({"a": w0[0]})
    assert named["name"].tolist() == ["a"]


@pytest.mark.parametrize("shape", [(), (7,), (5, 3), (3, 3, 2, 4), (2, 2, 2, 3, 5)])
def test_numpy_row_view_agrees_with_the_optimizer_row_view(shape):
    """profiles.weight_vectors (NumPy) and laperm.method.ops.to_rows (keras.ops) are one view."""
    from keras import ops

    from laperm.method import ops as lops

    w = np.arange(int(np.prod(shape)), dtype="float32").reshape(shape)
    expected = ops.convert_to_numpy(lops.to_rows(ops.convert_to_tensor(w)))
    np.testing.assert_array_equal(P.weight_vectors(w), expected.reshape(P.weight_vectors(w).shape))
    if len(shape) >= 1:
        assert P.weight_vectors(w).shape == expected.shape
