"""LaPerm never continues silently on a broken state: saving and loading,
non-finite weights, mixed precision, extreme sync periods and inner-optimizer
options.  Backend-agnostic: ``test_backends.py`` runs it under JAX too."""

from __future__ import annotations

import numpy as np
import pytest
import keras
from keras import ops

import laperm
from laperm.method import ops as lops
from laperm.method.optimizer import LaPermStateError

BACKEND = keras.backend.backend()


def sequential(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def numpy(v):
    return ops.convert_to_numpy(v.value if hasattr(v, "value") else v).copy()


def rows_sorted(w):
    return np.sort(ops.convert_to_numpy(lops.to_rows(w)), -1)


def test_exclude_survives_save_and_load(tmp_path):
    """Variable paths change on reload (``sequential/dense_1/kernel`` becomes
    ``dense_1/kernel``); the exact choice of permuted variables and sorted
    theta_0 must come back, never be re-captured from trained weights."""
    model = sequential()
    excluded = model.layers[1].kernel
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=2, exclude=[excluded])
    model.compile(opt, "sparse_categorical_crossentropy")
    x, y = data()
    theta0 = {v.path: numpy(v) for v in model.trainable_variables}
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    permuted_before = [v.name for v in opt.permuted_variables]
    sorted0_before = [numpy(s) for s in opt.sorted_initial_values]
    syncs_before = int(ops.convert_to_numpy(opt.sync_count))
    assert syncs_before == 3
    model.save(tmp_path / "m.keras")

    loaded = keras.models.load_model(tmp_path / "m.keras")
    opt2 = loaded.optimizer
    assert [v.name for v in opt2.permuted_variables] == permuted_before
    assert int(ops.convert_to_numpy(opt2.sync_count)) == syncs_before
    for a, b in zip(opt2.sorted_initial_values, sorted0_before):
        np.testing.assert_array_equal(numpy(a), b)
    # Training on keeps every permuted kernel a permutation of the ORIGINAL theta_0.
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    original = list(theta0.values())
    for i, v in enumerate(loaded.trainable_variables):
        if v.name == "kernel" and i != 2:  # the excluded layer's kernel is index 2
            np.testing.assert_array_equal(rows_sorted(v.value), rows_sorted(original[i]))
    assert not np.array_equal(rows_sorted(loaded.trainable_variables[2].value),
                              rows_sorted(original[2]))  # trained freely by Adam


def test_mismatched_saved_state_is_refused():
    model = sequential()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=2)
    opt.build(model.trainable_variables)
    store = {str(i): numpy(v) for i, v in enumerate(opt.variables)}
    opt.load_own_variables(store)  # its own state loads
    short = {str(i): store[str(i)] for i in range(len(store) - 3)}
    with pytest.raises(LaPermStateError, match="saved state has .* variables"):
        opt.load_own_variables(short)
    wrong = dict(store)
    k = next(i for i, v in enumerate(opt.variables) if v.name.endswith("sorted0"))
    wrong[str(k)] = np.zeros((1, 1), "float32")
    with pytest.raises(LaPermStateError, match="has shape"):
        opt.load_own_variables(wrong)
    with pytest.raises(LaPermStateError, match="saved for 7 trainable variables"):
        laperm.LaPerm.from_config({**opt.get_config(), "permuted_mask": [True] * 7}).build(
            model.trainable_variables)


def test_state_saved_before_nonfinite_step_variable_still_loads():
    """States written before LaPerm had its ``nonfinite_step`` variable."""
    model = sequential()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=2)
    opt.build(model.trainable_variables)
    old = [v for v in opt.variables if v.name != "nonfinite_step"]
    store = {str(i): numpy(v) + (1 if v.name.endswith("sorted0") else 0)
             for i, v in enumerate(old)}
    opt.load_own_variables(store)
    first = next(i for i, v in enumerate(old) if v is opt.sorted_initial_values[0])
    np.testing.assert_array_equal(numpy(opt.sorted_initial_values[0]), store[str(first)])


def _fit_into_nan(callbacks):
    model = sequential()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    x, y = data()
    x[24:] = np.nan  # from the fourth batch of 8 on, the gradients are NaN
    with pytest.raises(laperm.NonFiniteWeightsError, match=r"variable '.*kernel' at the sync after step (\d+)") as info:
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
    return opt, info.value


def test_nonfinite_weights_stop_fit_with_the_guard():
    opt, error = _fit_into_nan([laperm.NonFiniteGuard()])
    assert "step 6" in str(error)  # finite sync at step 3; NaN weights from step 4 on
    assert int(ops.convert_to_numpy(opt.sync_count)) == 1
    assert int(ops.convert_to_numpy(opt.iterations)) == 6  # stopped at the failing batch


def test_nonfinite_weights_raise_at_the_end_of_fit_without_the_guard():
    opt, error = _fit_into_nan([])
    assert "step 6" in str(error)
    assert int(ops.convert_to_numpy(opt.sync_count)) == 1  # later syncs skipped, not counted


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_end_to_end(policy):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = sequential()
        model.compile(laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=2),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        theta0 = [numpy(v) for v in model.trainable_variables]
        x, y = data()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        opt = laperm.find_laperm(model)
        assert isinstance(opt, laperm.LaPerm)
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        # The loss-scale optimizer skips steps whose float16 gradients overflow:
        # LaPerm counts the steps that were applied.
        applied = int(ops.convert_to_numpy(opt.iterations))
        assert applied >= 4 and int(ops.convert_to_numpy(opt.sync_count)) == applied // 2
        for v in opt.permuted_variables + list(opt.sorted_initial_values):
            assert v.dtype == "float32"
        with opt.synchronised():
            model.evaluate(x, y, verbose=0)
            for v, w0 in zip(model.trainable_variables, theta0):
                if opt.should_permute(v):
                    np.testing.assert_array_equal(rows_sorted(v.value), rows_sorted(w0))
        if applied % 2 == 0:  # the last applied step was a sync
            for v, w0 in zip(model.trainable_variables, theta0):
                if opt.should_permute(v):
                    np.testing.assert_array_equal(rows_sorted(v.value), rows_sorted(w0))
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_find_laperm_refuses_other_optimizers():
    with pytest.raises(ValueError, match="laperm.LaPerm"):
        laperm.find_laperm(keras.optimizers.Adam())
    assert laperm.find_laperm(keras.optimizers.Adam(), required=False) is None


@pytest.mark.parametrize("k", [2**31, 2**40, 0, -1])
def test_sync_period_out_of_int32_range_is_refused(k):
    with pytest.raises(ValueError, match="between 1 and 2147483647"):
        laperm.LaPerm("adam", sync_period=k)
    opt = laperm.LaPerm("adam", sync_period=2**31 - 1)
    with pytest.raises(ValueError, match=f"between 1 and 2147483647.*received {k}"):
        opt.sync_period = k


def test_inner_optimizer_with_ema_is_refused():
    with pytest.raises(ValueError, match="use_ema=True"):
        laperm.LaPerm(keras.optimizers.Adam(1e-2, use_ema=True), sync_period=3)


@pytest.mark.parametrize("inner", [
    lambda: keras.optimizers.Adam(0.05, clipnorm=0.1),
    lambda: keras.optimizers.Adam(0.05, global_clipnorm=0.1),
    lambda: keras.optimizers.Adam(0.05, clipvalue=0.01),
    lambda: keras.optimizers.AdamW(0.05, weight_decay=0.5),
    lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: keras.optimizers.Adam(0.05, gradient_accumulation_steps=2),
], ids=["clipnorm", "global_clipnorm", "clipvalue", "adamw", "momentum", "grad_accumulation"])
def test_inner_optimizer_options_keep_the_invariant(inner):
    model = sequential()
    opt = laperm.LaPerm(inner(), sync_period=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    theta0 = [numpy(v) for v in model.trainable_variables]
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)  # 6 steps: 2 syncs
    assert int(ops.convert_to_numpy(opt.sync_count)) == 2
    changed = False
    for v, w0 in zip(model.trainable_variables, theta0):
        if opt.should_permute(v):
            np.testing.assert_array_equal(rows_sorted(v.value), rows_sorted(w0))
            changed |= not np.array_equal(numpy(v), w0)
    assert changed  # training did reconnect something
