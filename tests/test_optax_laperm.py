"""laperm.optax: LaPerm as an optax GradientTransformation (Section 4), without Keras.

Runs in the main suite and the JAX tier (both environments have JAX, optax and
Keras), so the scenario of tests/sync_reference.py is compared with
laperm.LaPerm (Keras) there and with the NumPy reference everywhere.  Skipped
where optax is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

optax = pytest.importorskip("optax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import laperm.optax as lo  # noqa: E402
from laperm.exceptions import NonFiniteWeightsError  # noqa: E402

import sync_reference as ref  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def small_params(seed=0):
    """A Flax-layout CNN: conv kernel (kh, kw, cin, cout), dense kernel (in, out), biases."""
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {
        "conv": {"kernel": jax.random.uniform(k[0], (3, 3, 1, 4), minval=-0.5, maxval=0.5),
                 "bias": jnp.zeros(4)},
        "dense": {"kernel": jax.random.uniform(k[1], (144, 3), minval=-0.2, maxval=0.2),
                  "bias": jax.random.uniform(k[2], (3,), minval=-0.1, maxval=0.1)},
    }


def forward(params, x):
    y = jax.lax.conv_general_dilated(x, params["conv"]["kernel"], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jax.nn.relu(y + params["conv"]["bias"]).reshape(x.shape[0], -1)
    return y @ params["dense"]["kernel"] + params["dense"]["bias"]


def loss(params, x, y):
    logits = forward(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def data(n=9, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(8, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 8))
            for _ in range(n)]


def make_step(tx, jit=True):
    def step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state
    return jax.jit(step) if jit else step


def is_permutation_of(w, w0):
    return np.array_equal(np.sort(ref.rows(np.asarray(w)), 1), np.sort(ref.rows(np.asarray(w0)), 1))


# ------------------------------------------------------------------ imports
def test_imports_and_trains_without_keras_tensorflow_or_torch():
    code = textwrap.dedent("""
        import sys
        for name in ("keras", "tensorflow", "torch"):
            sys.modules[name] = None  # `import keras` raises ImportError from here on
        import jax.numpy as jnp, optax, laperm, laperm.optax
        tx = laperm.optax.laperm(optax.sgd(0.1), sync_period=2)
        params = {"w": jnp.arange(6.0).reshape(2, 3)}
        state = tx.init(params)
        for _ in range(4):
            updates, state = tx.update({"w": jnp.ones((2, 3))}, state, params)
            params = optax.apply_updates(params, updates)
        assert int(state.sync_count) == 2
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "OK"


# ---------------------------------------------- the same values everywhere
def _optax_scenario_run(theta0, grads, jit=True):
    params = {n: jnp.asarray(w) for n, w in theta0.items()}
    tx = lo.laperm(optax.sgd(ref.LEARNING_RATE), sync_period=ref.SYNC_PERIOD)
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    after, synced = [], []
    for step in range(ref.STEPS):
        updates, state = update({n: jnp.asarray(g[step]) for n, g in grads.items()}, state, params)
        params = optax.apply_updates(params, updates)
        if int(state.steps_since_sync) == 0:
            after.append({n: np.asarray(p) for n, p in params.items()})
            synced.append({n: np.asarray(p)
                           for n, p in lo.synchronised_params(state, params).items()})
    return after, synced


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_values_as_the_numpy_reference_after_every_sync(seed):
    theta0, grads = ref.scenario(seed)
    assert ref.ties_met(theta0, grads) > 10
    expected = ref.reference_run(theta0, grads)
    after, synced = _optax_scenario_run(theta0, grads, jit=seed != 2)
    assert len(after) == len(expected) == ref.STEPS // ref.SYNC_PERIOD
    for a, s, e in zip(after, synced, expected):
        for name in e:
            np.testing.assert_array_equal(a[name], e[name], err_msg=name)
            np.testing.assert_array_equal(s[name], e[name], err_msg=name)


def test_same_values_as_the_keras_laperm_after_every_sync():
    """laperm.LaPerm (Keras, on this environment's backend) and laperm.optax, same weights,
    same gradients: equal after every sync, ties and zeros included."""
    pytest.importorskip("keras")
    theta0, grads = ref.scenario(3)
    keras_after = ref.keras_run(theta0, grads)
    optax_after, _ = _optax_scenario_run(theta0, grads)
    for k, o in zip(keras_after, optax_after, strict=True):
        for name in ref.SHAPES:
            np.testing.assert_array_equal(o[name], k[name], err_msg=name)


# ------------------------------------------------------------ invariant
def test_kernels_are_a_permutation_of_theta0_after_every_sync_and_biases_are_not_touched():
    params = small_params()
    theta0 = params
    tx = lo.laperm(optax.adam(5e-2), sync_period=3)
    plain = optax.adam(5e-2)
    # op by op (no jit) for the exact comparison with plain Adam: XLA may fuse two
    # compiled programs differently and round the bias updates differently
    eager_step, step, plain_step = make_step(tx, jit=False), make_step(tx), make_step(plain, False)
    state, plain_state, plain_params = tx.init(params), plain.init(params), params
    for i, (x, y) in enumerate(data(9)):
        params, state = (eager_step if i < 3 else step)(params, state, x, y)
        if i < 3:
            plain_params, plain_state = plain_step(plain_params, plain_state, x, y)
        synced = lo.synchronised_params(state, params)
        for layer in ("conv", "dense"):
            w, w0 = params[layer]["kernel"], theta0[layer]["kernel"]
            assert is_permutation_of(synced[layer]["kernel"], w0)
            if (i + 1) % 3 == 0:  # after a sync: the parameters are the synced values
                np.testing.assert_allclose(w, synced[layer]["kernel"], rtol=0, atol=1e-7)
            else:
                assert not is_permutation_of(w, w0)
            assert synced[layer]["bias"] is params[layer]["bias"]
        if i == 2:  # the first sync changed the kernels and nothing else
            for layer in ("conv", "dense"):
                assert np.array_equal(params[layer]["bias"], plain_params[layer]["bias"])
                assert not np.array_equal(params[layer]["kernel"], plain_params[layer]["kernel"])
    assert int(state.sync_count) == 3 and int(state.count) == 9
    # the inner Adam was never reset: its step count is the number of updates
    assert int(state.inner_state[0].count) == 9


def test_a_pruned_kernel_keeps_its_zeros_in_every_vector():
    params = small_params(1)
    mask = jax.random.bernoulli(jax.random.PRNGKey(7), 0.5, params["dense"]["kernel"].shape)
    params["dense"]["kernel"] = params["dense"]["kernel"] * mask
    zeros = (ref.rows(np.asarray(params["dense"]["kernel"])) == 0).sum(1)
    tx = lo.laperm(optax.adam(5e-2), sync_period=2)
    state, step = tx.init(params), make_step(tx)
    for x, y in data(4):
        params, state = step(params, state, x, y)
    after = np.asarray(params["dense"]["kernel"])
    assert np.array_equal((ref.rows(after) == 0).sum(1), zeros)  # zeros land exactly: 0 - p + p


def test_mask_chooses_the_permuted_leaves():
    params = small_params()
    default = lo.laperm(optax.sgd(0.1), 2).init(params)
    assert isinstance(default.sorted0["dense"]["bias"], optax.MaskedNode)
    assert default.sorted0["dense"]["kernel"].shape == (3, 144)
    mask = {"conv": {"kernel": True, "bias": True}, "dense": {"kernel": False, "bias": True}}
    for chosen in (mask, lambda p: mask):
        state = lo.laperm(optax.sgd(0.1), 2, mask=chosen).init(params)
        assert state.sorted0["conv"]["bias"].shape == (1, 4)
        assert isinstance(state.sorted0["dense"]["kernel"], optax.MaskedNode)
    with pytest.raises(ValueError, match="mask"):
        lo.laperm(optax.sgd(0.1), 2, mask={"conv": True}).init(params)


def test_the_state_is_a_small_pytree_and_synchronised_params_reads_it_inside_a_chain():
    params = small_params()
    tx = optax.chain(optax.clip_by_global_norm(1.0), lo.laperm(optax.adam(1e-2), 2))
    state = tx.init(params)
    assert isinstance(state[1], lo.LaPermState)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))
    synced = jax.jit(lo.synchronised_params)(state, params)
    np.testing.assert_array_equal(synced["conv"]["kernel"], params["conv"]["kernel"])


# ---------------------------------------------------------- NaN / inf
def test_a_sync_that_meets_nan_is_skipped_recorded_and_raised_by_check_finite():
    params = {"w": jnp.arange(6.0).reshape(2, 3)}
    tx = lo.laperm(optax.sgd(1.0), sync_period=2)
    state = tx.init(params)
    update = jax.jit(tx.update)
    grads = {"w": jnp.zeros((2, 3))}
    updates, state = update(grads, state, params)
    bad = {"w": jnp.zeros((2, 3)).at[1, 1].set(jnp.nan)}
    updates, state = update(bad, state, params)
    assert np.isnan(updates["w"][1, 1]) and np.array_equal(updates["w"][0], np.zeros(3))
    assert (int(state.sync_count), int(state.steps_since_sync), int(state.nonfinite_step)) == (0, 2, 2)
    with pytest.raises(NonFiniteWeightsError, match="update 2"):
        lo.check_finite(state)
    updates, state = update(grads, state, params)  # the next update syncs again, and counts
    assert (int(state.sync_count), int(state.steps_since_sync), int(state.nonfinite_step)) == (1, 0, 2)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", True, None])
def test_a_bad_sync_period_is_one_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="`sync_period` must be a positive integer"):
        lo.laperm(optax.sgd(0.1), sync_period=bad)


@pytest.mark.parametrize("inner", ["adam", None, optax.adam])
def test_an_inner_object_that_is_not_a_transformation_is_one_type_error(inner):
    with pytest.raises(TypeError, match="wraps an optax.GradientTransformation"):
        lo.laperm(inner, sync_period=2)


def test_update_without_params_is_one_value_error():
    params = {"w": jnp.ones((2, 3))}
    tx = lo.laperm(optax.sgd(0.1), 2)
    with pytest.raises(ValueError, match=r"needs the parameters: update\(grads, state, params\)"):
        tx.update(params, tx.init(params))
