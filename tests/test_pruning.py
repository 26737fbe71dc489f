"""Tests of laperm.pruning: random pruning (5.4) and shared value (5.5)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laperm import pruning

COLUMNS = ["layer", "variable", "shape", "size", "keep_asked", "keep_applied", "nonzero",
           "kept_fraction"]


def mid_model():
    """Conv + BN + Dense, with a nested Sequential (about 60k kernel entries)."""
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(32, 3, name="conv_a")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(32, 3, name="conv_b")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, name="dense_a")(h)
    head = keras.Sequential([keras.layers.Dense(10, name="dense_out")], name="head")
    return keras.Model(inputs, head(h), name="mid")


def f2_model():
    return keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", name="d128"),
        keras.layers.Dense(64, activation="relu", name="d64"),
        keras.layers.Dense(10, activation="softmax", name="d10"),
    ])


def weights_np(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_kernel_variables_order_and_owners():
    names = [layer for layer, _ in pruning.kernel_variables(mid_model())]
    assert names == ["conv_a", "conv_b", "dense_a", "dense_out"]


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.7])
def test_random_prune_fractions(keep):
    model = mid_model()
    before = weights_np(model)
    df = pruning.random_prune(model, keep, seed=1)
    assert list(df.columns) == COLUMNS
    assert df["layer"].tolist() == ["conv_a", "conv_b", "dense_a", "dense_out"]
    assert df["keep_applied"].iloc[0] == max(keep, 0.8)
    assert (df["keep_asked"] == keep).all()
    # first layer >= 0.8 (864 entries: allow 4 sigma)
    assert df["kept_fraction"].iloc[0] > 0.8 - 4 * np.sqrt(0.16 / 864)
    big = df[df["size"] > 1000]
    for frac, n in zip(big["kept_fraction"][1:], big["size"][1:]):
        assert abs(frac - keep) < 4 * np.sqrt(keep * (1 - keep) / n) + 1e-9
    after = weights_np(model)
    for b, a in zip(before, after):
        if b.ndim <= 1:
            np.testing.assert_array_equal(a, b)  # biases and BN untouched
        else:
            kept = a != 0
            np.testing.assert_array_equal(a[kept], b[kept])  # survivors unchanged
    for row, (_, v) in zip(df.itertuples(), pruning.kernel_variables(model)):
        arr = keras.ops.convert_to_numpy(v)
        assert row.nonzero == np.count_nonzero(arr) and row.shape == arr.shape


def test_random_prune_deterministic_by_seed():
    m1, m2, m3 = mid_model(), mid_model(), mid_model()
    m2.set_weights(m1.get_weights())
    m3.set_weights(m1.get_weights())
    pruning.random_prune(m1, 0.5, seed=7)
    pruning.random_prune(m2, 0.5, seed=7)
    pruning.random_prune(m3, 0.5, seed=8)
    for a, b in zip(weights_np(m1), weights_np(m2)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a != 0, c != 0)
               for a, c in zip(weights_np(m1), weights_np(m3)) if a.ndim > 1)


def test_random_prune_per_layer_and_first_layer_rule():
    model = mid_model()
    df = pruning.random_prune(model, [0.5, 0.25, 1.0, 0.5], first_layer_keep=None, seed=0)
    assert df["keep_applied"].tolist() == [0.5, 0.25, 1.0, 0.5]
    assert df["kept_fraction"].iloc[2] == 1.0
    model = mid_model()
    df = pruning.random_prune(model, {"conv_b": 0.2, "dense_a": 0.4}, seed=0)
    assert df["keep_asked"].tolist() == [1.0, 0.2, 0.4, 1.0]
    assert df["keep_applied"].tolist() == [1.0, 0.2, 0.4, 1.0]
    assert abs(df["kept_fraction"].iloc[1] - 0.2) < 0.03


@settings(max_examples=15, deadline=None)
@given(keep=st.floats(0.05, 1.0), seed=st.integers(0, 2**31), first=st.floats(0.0, 1.0))
def test_random_prune_property(keep, seed, first):
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(30), keras.layers.Dense(40)])
    first = max(first, 1e-3)
    df = pruning.random_prune(model, keep, first_layer_keep=first, seed=seed)
    assert df["keep_applied"].iloc[0] == max(keep, first)
    assert df["keep_applied"].iloc[1] == keep
    assert ((df["kept_fraction"] >= 0) & (df["kept_fraction"] <= 1)).all()
    if keep == 1.0:
        assert (df["kept_fraction"] == 1.0).all()
    bias = [v for v in model.weights if len(v.shape) == 1]
    assert all(np.all(keras.ops.convert_to_numpy(b) == 0) for b in bias)


@pytest.mark.parametrize("keep, match", [
    (0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), (-0.1, "keep"), (float("nan"), "keep"),
    ([0.5, 0.5], "4 kernels"), ({"nope": 0.5}, "nope"), ("0.5", "keep"), ([0.5, 0.5, 2, 0.5], "keep"),
])
def test_random_prune_bad_keep(keep, match):
    with pytest.raises(ValueError, match=match):
        pruning.random_prune(mid_model(), keep)


def test_random_prune_bad_first_layer_keep_and_unbuilt():
    with pytest.raises(ValueError, match="first_layer_keep"):
        pruning.random_prune(mid_model(), 0.5, first_layer_keep=1.2)
    with pytest.raises(ValueError, match="build"):
        pruning.random_prune(keras.Sequential([keras.layers.Dense(3)]), 0.5)


def test_shared_value_f2_paper_setting():
    model = f2_model()
    df = pruning.shared_value(model, **pruning.PAPER_SHARED_VALUE["f2"], seed=0)
    assert list(df.columns) == COLUMNS + ["value"]
    assert df["shape"].tolist() == [(784, 128), (128, 64), (64, 10)]
    for v in model.weights:
        arr = keras.ops.convert_to_numpy(v)
        if arr.ndim > 1:
            assert set(np.unique(arr).tolist()) == {0.0, np.float32(0.03)}
        else:
            assert np.all(arr == 0)  # Dense biases (zeros init) untouched
    np.testing.assert_allclose(df["kept_fraction"], [1 / 15, 1 / 7, 1 / 3], atol=0.03)
    assert abs(pruning.overall_kept_fraction(df) - 0.073) < 0.005
    np.testing.assert_allclose(df["value"], 0.03, rtol=1e-6)


def test_shared_value_deterministic_and_errors():
    a, b = f2_model(), f2_model()
    pruning.shared_value(a, 0.08, 0.6, seed=3)
    pruning.shared_value(b, 0.08, 0.6, seed=3)
    for x, y in zip(weights_np(a), weights_np(b)):
        np.testing.assert_array_equal(x, y)
    stats = pruning.kernel_stats(a)
    assert (stats["n_distinct"] == 2).all()
    for bad in (0.0, float("inf"), "v"):
        with pytest.raises(ValueError, match="value"):
            pruning.shared_value(f2_model(), bad, 0.5)
    with pytest.raises(ValueError, match="3 kernels"):
        pruning.shared_value(f2_model(), 0.03, [0.1, 0.2])


def test_shared_value_per_unit_mask_fixes_every_units_count():
    model = f2_model()
    df = pruning.shared_value(model, 0.03, [1 / 15, 1 / 7, 1 / 3], seed=1, mask="per_unit")
    kernels = [keras.ops.convert_to_numpy(v) for v in model.weights if len(v.shape) > 1]
    for kernel, keep in zip(kernels, [1 / 15, 1 / 7, 1 / 3]):
        per_unit = (kernel != 0).sum(axis=0)  # one count per unit (output column)
        assert (per_unit == round(keep * kernel.shape[0])).all()
    np.testing.assert_allclose(df["value"], 0.03, rtol=1e-6)
    # The paper's Bernoulli mask: counts differ between the ten output units.
    model = f2_model()
    pruning.shared_value(model, 0.03, [1 / 15, 1 / 7, 1 / 3], seed=1)
    out = keras.ops.convert_to_numpy(model.weights[-2] if len(model.weights[-1].shape) == 1
                                     else model.weights[-1])
    assert len(set((out != 0).sum(axis=0).tolist())) > 1
    with pytest.raises(ValueError, match="mask"):
        pruning.shared_value(f2_model(), 0.03, 0.5, mask="balanced")


def test_keep_for_pruned_percent():
    assert {p: pruning.keep_for_pruned_percent(p) for p in pruning.PAPER_PRUNE_KEEP} == \
        pytest.approx(pruning.PAPER_PRUNE_KEEP)
    for bad in (-1, 100, 150):
        with pytest.raises(ValueError, match=r"pruning percentage must be in \[0, 100\)"):
            pruning.keep_for_pruned_percent(bad)


def test_released_checkpoints_match_paper_settings(reference_checkpoints):
    f2 = pruning.h5_kernel_stats(reference_checkpoints / "F2.h5")
    assert f2["shape"].tolist() == [(784, 128), (128, 64), (64, 10)]
    np.testing.assert_allclose(f2["kept_fraction"], pruning.PAPER_CHECKPOINT_NONZERO["f2"],
                               atol=1e-5)
    np.testing.assert_allclose(f2["kept_fraction"], pruning.PAPER_SHARED_VALUE["f2"]["keep"],
                               atol=0.01)
    assert abs(pruning.overall_kept_fraction(f2) - 0.073) < 0.001
    assert all(np.allclose(v, (0.0, 0.03)) for v in f2["values"])
    f1 = pruning.h5_kernel_stats(reference_checkpoints / "F1.h5")
    assert f1["kept_fraction"].iloc[0] == pytest.approx(0.598, abs=1e-3)
    assert np.allclose(f1["values"].iloc[0], (0.0, 0.08))
