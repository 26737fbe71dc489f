"""LaPerm as a Keras 3 optimizer (Section 4).  Backend-agnostic: this module is
also run under ``KERAS_BACKEND=jax`` by ``test_backends.py``."""

from __future__ import annotations

import numpy as np
import pytest
import keras
from keras import ops

import laperm
from laperm.method import ops as lops
from laperm.method.callbacks import PermutationRecorder, SyncPeriodScheduler

BACKEND = keras.backend.backend()


def tiny_model(seed=0, bias_and_bn=True):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6,)), keras.layers.Dense(8, activation="relu")]
    if bias_and_bn:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(3, activation="softmax", use_bias=bias_and_bn))
    return keras.Sequential(layers)


def tiny_conv(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def data(shape=(6,), n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype("float32"), rng.integers(0, 3, n)


def snapshot(model):
    return [ops.convert_to_numpy(v.value).copy() for v in model.trainable_variables]


def is_permutation_of(w, w0):
    return np.array_equal(
        np.sort(ops.convert_to_numpy(lops.to_rows(w)), -1),
        np.sort(ops.convert_to_numpy(lops.to_rows(w0)), -1),
    )


def compile_fit(model, optimizer, x, y, steps_per_execution=1, jit_compile=False, epochs=1, batch_size=8):
    model.compile(
        optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"],
        steps_per_execution=steps_per_execution, jit_compile=jit_compile,
    )
    return model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", True, None])
def test_bad_sync_period_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="sync_period"):
        laperm.LaPerm("adam", sync_period=bad)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="conv7"):
        laperm.LaPerm.from_paper("conv99")
    opt = laperm.LaPerm.from_paper("conv7")
    assert opt.sync_period == 1200 and opt.skip_bias is False


#: Keras's torch trainer refuses steps_per_execution > 1.
needs_steps_per_execution = pytest.mark.skipif(
    BACKEND == "torch", reason="Keras: steps_per_execution must be 1 with the PyTorch backend")


@pytest.mark.parametrize("steps_per_execution,jit", [
    (1, False),
    pytest.param(3, False, marks=needs_steps_per_execution),
    pytest.param(3, True, marks=needs_steps_per_execution),
])
def test_weights_after_sync_are_a_permutation_of_theta0(steps_per_execution, jit):
    model = tiny_model()
    w0 = snapshot(model)
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=6, skip_bias=False, skip_bn=True)
    compile_fit(model, opt, x, y, steps_per_execution, jit)  # 6 steps -> exactly 1 sync
    assert int(ops.convert_to_numpy(opt.sync_count)) == 1
    for v, w in zip(model.trainable_variables, w0):
        value = ops.convert_to_numpy(v.value)
        if opt.should_permute(v):
            assert is_permutation_of(value, w), v.path
            if np.ptp(w) > 0:  # a constant vector (zero bias) cannot move
                assert not np.array_equal(value, w), v.path  # it did reconnect
        else:
            assert not is_permutation_of(value, w), v.path  # trained freely


@needs_steps_per_execution
def test_steps_per_execution_and_jit_give_the_same_trajectory():
    results = []
    for spe, jit in [(1, False), (4, False), (4, True)]:
        model = tiny_conv()
        x, y = data((6, 6, 2), n=64)
        opt = laperm.LaPerm(keras.optimizers.Adam(0.02), sync_period=4)
        compile_fit(model, opt, x, y, spe, jit, epochs=2)
        results.append(snapshot(model))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_sync_period_one_keeps_every_step_a_permutation():
    model = tiny_conv()
    w0 = snapshot(model)
    x, y = data((6, 6, 2), n=40)
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=1, skip_bias=False)
    compile_fit(model, opt, x, y, epochs=1, batch_size=8)
    assert int(ops.convert_to_numpy(opt.sync_count)) == 5
    for v, w in zip(model.trainable_variables, w0):
        assert is_permutation_of(ops.convert_to_numpy(v.value), w)


def test_huge_sync_period_is_the_bare_inner_optimizer():
    x, y = data()
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    compile_fit(a, laperm.LaPerm(keras.optimizers.Adam(0.01), sync_period=10**9), x, y, epochs=2)
    compile_fit(b, keras.optimizers.Adam(0.01), x, y, epochs=2)
    for va, vb in zip(snapshot(a), snapshot(b)):
        np.testing.assert_allclose(va, vb, rtol=1e-6, atol=1e-7)


def _apply_sequence(optimizer, variables, grads_seq):
    for grads in grads_seq:
        optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)


def test_adam_state_survives_syncs_and_can_be_reset():
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    grads_seq = [[rng.normal(size=g.shape).astype("float32") for g in init] for _ in range(7)]

    def run(opt):
        variables = [keras.Variable(w, name=f"v{i}") for i, w in enumerate(init)]
        opt.build(variables)
        _apply_sequence(opt, variables, grads_seq)
        inner = opt.inner_optimizer if isinstance(opt, laperm.LaPerm) else opt
        return [ops.convert_to_numpy(v) for v in inner.variables], opt

    plain, _ = run(keras.optimizers.Adam(0.1))
    kept, lp = run(laperm.LaPerm(keras.optimizers.Adam(0.1), sync_period=3, skip_bias=False))
    assert int(ops.convert_to_numpy(lp.sync_count)) == 2
    # Adam's moments depend only on the gradients: identical to plain Adam's.
    for a, b in zip(plain, kept):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert int(ops.convert_to_numpy(lp.iterations)) == 7
    _, reset = run(
        laperm.LaPerm(keras.optimizers.Adam(0.1), sync_period=7, skip_bias=False, reset_inner_state=True)
    )
    moments = [v for v in reset.inner_optimizer.variables if len(v.shape) > 0]
    assert moments and all(not np.any(ops.convert_to_numpy(m)) for m in moments)
    assert int(ops.convert_to_numpy(reset.iterations)) == 7


def test_variable_selection_by_flags_object_and_path():
    model = tiny_model()
    opt = laperm.LaPerm("adam", skip_bias=True, skip_bn=True)
    opt.build(model.trainable_variables)
    assert [v.name for v in opt.permuted_variables] == ["kernel", "kernel"]
    opt = laperm.LaPerm("adam", skip_bias=False, skip_bn=False)
    opt.build(model.trainable_variables)
    assert len(opt.permuted_variables) == len(model.trainable_variables)
    first_kernel = model.trainable_variables[0]
    opt = laperm.LaPerm("adam", skip_bias=False, exclude=[first_kernel, "batch_normalization"])
    opt.build(model.trainable_variables)
    paths = [v.path for v in opt.permuted_variables]
    assert first_kernel.path not in paths
    assert not any("batch_normalization" in p for p in paths)
    assert len(paths) == 3
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_permutation(var_names=["dense"])


def test_theta0_is_captured_at_build_after_pruning():
    model = tiny_model(bias_and_bn=False)
    kernel = model.trainable_variables[0]
    pruned = ops.convert_to_numpy(kernel.value) * (np.arange(48).reshape(6, 8) % 2)
    kernel.assign(pruned.astype("float32"))
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=6)
    compile_fit(model, opt, x, y)
    after = ops.convert_to_numpy(kernel.value)
    assert is_permutation_of(after, pruned)
    assert np.count_nonzero(after == 0) == np.count_nonzero(pruned == 0)


def test_config_round_trip():
    sched = laperm.PiecewiseSyncPeriod([2, 5], [10, 20, 40], steps_per_epoch=100)
    opt = laperm.LaPerm(keras.optimizers.Adam(3e-4), sync_period=sched, skip_bias=False, exclude=["head"])
    clone = laperm.LaPerm.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    assert isinstance(clone.inner_optimizer, keras.optimizers.Adam)
    assert clone.sync_period.values == [10, 20, 40]
    serialized = keras.optimizers.serialize(opt)
    assert isinstance(keras.optimizers.deserialize(serialized), laperm.LaPerm)


def test_save_load_keeps_sorted_theta0_and_resumes(tmp_path):
    model = tiny_model()
    w0 = snapshot(model)
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=4, skip_bias=False)
    compile_fit(model, opt, x, y)  # 6 steps: 1 sync, 2 steps since
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    lopt = loaded.optimizer
    assert isinstance(lopt, laperm.LaPerm)
    for a, b in zip(lopt.sorted_initial_values, opt.sorted_initial_values):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    assert int(ops.convert_to_numpy(lopt.steps_since_sync)) == 2
    assert int(ops.convert_to_numpy(lopt.iterations)) == 6
    loaded.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0, shuffle=False)  # 2 more: sync
    assert int(ops.convert_to_numpy(lopt.sync_count)) == 2
    for v, w in zip(loaded.trainable_variables, w0):
        if lopt.should_permute(v):
            assert is_permutation_of(ops.convert_to_numpy(v.value), w)


def test_synchronised_context_evaluates_on_a_permutation_and_restores():
    model = tiny_model()
    w0 = snapshot(model)
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=100, skip_bias=False)
    compile_fit(model, opt, x, y)
    trained = snapshot(model)
    with opt.synchronised():
        for v, w in zip(model.trainable_variables, w0):
            if opt.should_permute(v):
                assert is_permutation_of(ops.convert_to_numpy(v.value), w)
    for a, b in zip(snapshot(model), trained):
        np.testing.assert_array_equal(a, b)
    opt.sync_now()
    assert int(ops.convert_to_numpy(opt.sync_count)) == 1


def test_nonfinite_weights_raise_naming_the_variable_and_step_eagerly():
    variables = [keras.Variable(np.ones((3, 2), "float32"), name="w")]
    opt = laperm.LaPerm(keras.optimizers.SGD(0.1), sync_period=1)
    opt.build(variables)
    variables[0].assign(np.array([[1, np.nan], [2, 3], [4, 5]], "float32"))
    before = ops.convert_to_numpy(variables[0].value).copy()
    with pytest.raises(laperm.NonFiniteWeightsError,
                       match="variable 'w' at the sync after step 1.*already written"):
        opt.apply([ops.zeros((3, 2))], variables)
    after = ops.convert_to_numpy(variables[0].value)
    np.testing.assert_array_equal(np.isnan(after), np.isnan(before))
    np.testing.assert_array_equal(after[~np.isnan(after)], before[~np.isnan(before)])
    assert int(ops.convert_to_numpy(opt.sync_count)) == 0  # the skipped sync is not counted


def test_permutation_recorder_captures_each_sync():
    model = tiny_model(bias_and_bn=False)
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.05), sync_period=2)
    model.compile(opt, "sparse_categorical_crossentropy")
    recorder = PermutationRecorder(variables=[model.layers[0].kernel], vectors=[0, 1])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder])
    (path, records), = recorder.records.items()
    assert len(records) == 1 + 3 and records[0].shape == (2, 6)
    assert recorder.steps == [0, 2, 4, 6]
    for r in records:  # every record is a permutation of 0..n-1 per vector
        np.testing.assert_array_equal(np.sort(r, -1), np.tile(np.arange(6), (2, 1)))


def test_sync_period_schedules():
    sched = laperm.PiecewiseSyncPeriod([2], [1, 3])
    assert [int(ops.convert_to_numpy(sched(t))) for t in (0, 1, 2, 9)] == [1, 1, 3, 3]
    with pytest.raises(ValueError, match=r"len\(values\) == len\(boundaries\) \+ 1"):
        laperm.PiecewiseSyncPeriod([2], [1])
    model = tiny_model()
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.Adam(0.01), sync_period=sched)
    compile_fit(model, opt, x, y)  # steps 1,2 sync (k=1), then k=3: steps 5
    assert int(ops.convert_to_numpy(opt.sync_count)) == 3
    model2 = tiny_model()
    opt2 = laperm.LaPerm(keras.optimizers.Adam(0.01), sync_period=100)
    model2.compile(opt2, "sparse_categorical_crossentropy")
    model2.fit(x, y, batch_size=8, epochs=2, verbose=0,
               callbacks=[SyncPeriodScheduler(lambda epoch: 2 if epoch == 0 else 3)])
    assert opt2.sync_period == 3
    assert int(ops.convert_to_numpy(opt2.sync_count)) == 3 + 2


def _check_custom_loop_result(model, opt, w0):
    assert int(ops.convert_to_numpy(opt.sync_count)) == 2
    for v, w in zip(model.trainable_variables, w0):
        if opt.should_permute(v):
            assert is_permutation_of(ops.convert_to_numpy(v.value), w), v.path


def _custom_loop_setup():
    """A tiny model, its theta_0, data, a built LaPerm(SGD, k=3) and the loss of the custom loops."""
    model = tiny_model(bias_and_bn=False)
    w0 = snapshot(model)
    x, y = data()
    opt = laperm.LaPerm(keras.optimizers.SGD(0.5), sync_period=3)
    opt.build(model.trainable_variables)  # captures theta_0
    return model, w0, x, y, opt, keras.losses.SparseCategoricalCrossentropy()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function custom loop")
def test_custom_training_loop_under_tf_function():
    import tensorflow as tf

    model, w0, x, y, opt, loss_fn = _custom_loop_setup()

    @tf.function(jit_compile=True)
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply(grads, model.trainable_variables)
        return loss

    for i in range(6):
        train_step(x[8 * i: 8 * i + 8], y[8 * i: 8 * i + 8])
    _check_custom_loop_result(model, opt, w0)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit stateless custom loop")
def test_custom_training_loop_under_jax_jit():
    import jax

    model, w0, x, y, opt, loss_fn = _custom_loop_setup()

    @jax.jit
    def train_step(tv, ov, xb, yb):
        def loss(tv):
            pred, _ = model.stateless_call(tv, [], xb, training=True)
            return loss_fn(yb, pred)

        grads = jax.grad(loss)(tv)
        return opt.stateless_apply(ov, grads, tv)

    tv = [v.value for v in model.trainable_variables]
    ov = [v.value for v in opt.variables]
    for i in range(6):
        tv, ov = train_step(tv, ov, x[8 * i: 8 * i + 8], y[8 * i: 8 * i + 8])
    for v, value in zip(model.trainable_variables, tv):
        v.assign(value)
    for v, value in zip(opt.variables, ov):
        v.assign(value)
    _check_custom_loop_result(model, opt, w0)


@pytest.mark.skipif(BACKEND != "torch", reason="torch autograd custom loop")
def test_custom_training_loop_with_torch_autograd():
    import torch

    model, w0, x, y, opt, loss_fn = _custom_loop_setup()
    for i in range(6):
        model.zero_grad()
        loss = loss_fn(y[8 * i: 8 * i + 8], model(x[8 * i: 8 * i + 8], training=True))
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables]
        with torch.no_grad():
            opt.apply(grads, model.trainable_variables)
    _check_custom_loop_result(model, opt, w0)
