"""Page 4.2's PyTorch part: :class:`laperm.torch.LaPerm` on the sync test case and in training.

Needs torch (``pip install "laperm[pytorch]"``); the page imports this module only where
:func:`laperm.book.frameworks.installed` finds it.  A torch ``Linear`` weight is
``(out, in)``, the transpose of a Keras kernel: both functions take and give the Keras
layout, so that their results compare with :func:`laperm.book.frameworks.keras_synced`.
"""

from __future__ import annotations

import numpy as np
import torch

from laperm import torch as laperm_torch
from laperm.analysis.profiles import is_permutation_of
from laperm.book.frameworks import MLPSetup, TrainedRun, keras_synced


def synced(theta0, current) -> np.ndarray:
    """:func:`laperm.torch.permute_to_ranks`'s sync of ``current`` (Keras layout in and out)."""
    w = torch.tensor(current.T)  # torch layout (out, in)
    sorted0 = laperm_torch.sorted_rows(torch.tensor(theta0.T))
    return laperm_torch.permute_to_ranks(w, sorted0).numpy().T


def train(mlp: MLPSetup, epochs: int, sync_period: int, learning_rate: float = 1e-3) -> TrainedRun:
    """Train the 784-128-64-10 ReLU network from ``mlp``'s θ0 with LaPerm(Adam) in torch.

    An ordinary torch loop (``zero_grad``, cross-entropy, ``backward``, ``step``) over
    ``mlp.batches(epoch)``.  After every epoch the test accuracy is measured on the
    synchronised weights (inside ``opt.synchronised()``) and on the inner weights, and
    every kernel is checked to be a permutation of its θ0.

    Args:
        mlp: the data, θ0 and batches shared with the optax training.
        epochs: epochs to train.
        sync_period: LaPerm's k.
        learning_rate: Adam's.

    Returns:
        The run, framework ``"PyTorch"``.
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m, k, b in zip(linears, mlp.kernels0, mlp.biases0):
            m.weight.copy_(torch.tensor(k.T))
            m.bias.copy_(torch.tensor(b))
    opt = laperm_torch.LaPerm(torch.optim.Adam(net.parameters(), learning_rate),
                              sync_period=sync_period)
    x, y, xt, yt = map(torch.tensor, (mlp.x_train, mlp.y_train, mlp.x_test, mlp.y_test))

    def accuracy():
        with torch.no_grad():
            return (net(xt).argmax(1) == yt).float().mean().item()

    rows = []
    for epoch in range(epochs):
        for idx in mlp.batches(epoch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        with opt.synchronised():
            synced_acc = accuracy()
            invariant = all(is_permutation_of(k, m.weight.detach().numpy().T)
                            for k, m in zip(mlp.kernels0, linears))
        rows.append(dict(framework="PyTorch", epoch=epoch + 1, syncs=opt.sync_count,
                         test_acc_synced=synced_acc, test_acc_inner=accuracy(),
                         permutation_of_theta0=invariant))
    current = [m.weight.detach().numpy().T for m in linears]
    same_as_keras = all(np.array_equal(keras_synced(k, w), s.numpy().T)
                        for k, w, s in zip(mlp.kernels0, current, opt.synced_values()))
    return TrainedRun("PyTorch", rows, same_as_keras, opt.steps_since_sync)
