"""Page 4.2's JAX part: :func:`laperm.optax.laperm` on the sync test case and in training.

Needs JAX and optax (``pip install "laperm[optax]"``); the page imports this module only
where :func:`laperm.book.frameworks.installed` finds optax.  optax sees the Flax layout of a
kernel, ``(in, out)``, which is the Keras one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from laperm import optax as laperm_optax
from laperm.analysis.profiles import is_permutation_of
from laperm.book.frameworks import MLPSetup, TrainedRun, keras_synced


def synced(theta0, current) -> np.ndarray:
    """:func:`laperm.optax.permute_to_ranks`'s sync of ``current`` (Keras layout)."""
    return np.asarray(laperm_optax.permute_to_ranks(jnp.asarray(current),
                                                    laperm_optax.sorted_rows(theta0)))


def train(mlp: MLPSetup, epochs: int, sync_period: int, learning_rate: float = 1e-3) -> TrainedRun:
    """Train the 784-128-64-10 ReLU network from ``mlp``'s θ0 with LaPerm(Adam) in optax.

    The parameters are a list of ``{"kernel", "bias"}`` dicts; one ``jax.jit`` step
    applies ``tx.update`` to the gradient.  After every epoch the test accuracy is measured
    on :func:`laperm.optax.synchronised_params` and on the inner parameters, and every
    kernel is checked to be a permutation of its θ0.

    Args:
        mlp: the data, θ0 and batches shared with the torch training.
        epochs: epochs to train.
        sync_period: LaPerm's k.
        learning_rate: Adam's.

    Returns:
        The run, framework ``"JAX + optax"``.
    """
    params = [{"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
              for k, b in zip(mlp.kernels0, mlp.biases0)]

    def logits(params, x):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
        return x @ params[-1]["kernel"] + params[-1]["bias"]

    def loss(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    tx = laperm_optax.laperm(optax.adam(learning_rate), sync_period=sync_period)
    state = tx.init(params)

    @jax.jit
    def step(params, state, x, y):
        updates, state = tx.update(jax.grad(loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    def accuracy(params):
        return float(np.mean(np.asarray(logits(params, mlp.x_test)).argmax(1) == mlp.y_test))

    rows = []
    for epoch in range(epochs):
        for idx in mlp.batches(epoch):
            params, state = step(params, state, mlp.x_train[idx], mlp.y_train[idx])
        synced_params = laperm_optax.synchronised_params(state, params)
        invariant = all(is_permutation_of(k, np.asarray(layer["kernel"]))
                        for k, layer in zip(mlp.kernels0, synced_params))
        rows.append(dict(framework="JAX + optax", epoch=epoch + 1, syncs=int(state.sync_count),
                         test_acc_synced=accuracy(synced_params), test_acc_inner=accuracy(params),
                         permutation_of_theta0=invariant))
    same_as_keras = all(np.array_equal(keras_synced(k, np.asarray(p["kernel"])),
                                       np.asarray(s["kernel"]))
                        for k, p, s in zip(mlp.kernels0, params, synced_params))
    return TrainedRun("JAX + optax", rows, same_as_keras, int(state.steps_since_sync))
