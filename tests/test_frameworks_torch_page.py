"""Page 4.2's PyTorch part (laperm.book.frameworks_torch); skipped where torch is missing."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from laperm.book import frameworks, frameworks_torch  # noqa: E402


def test_torch_sync_equals_the_keras_sync_in_the_keras_layout():
    theta0 = np.array([[0.50], [-0.20], [0.10], [-0.70], [0.30], [0.90]], dtype="float32")
    current = np.array([[0.42], [0.35], [-0.80], [0.05], [1.30], [-0.15]], dtype="float32")
    np.testing.assert_array_equal(frameworks_torch.synced(theta0, current)[:, 0],
                                  np.float32([0.5, 0.3, -0.7, 0.1, 0.9, -0.2]))  # by hand
    theta0, current = frameworks.tied_kernel((64, 8), seed=3)
    np.testing.assert_array_equal(frameworks_torch.synced(theta0, current),
                                  frameworks.keras_synced(theta0, current))


def test_torch_training_keeps_every_kernel_a_permutation_of_theta0():
    rng = np.random.default_rng(0)
    kernels0, biases0 = frameworks.mlp_theta0()
    mlp = frameworks.MLPSetup(rng.random((300, 784)).astype("float32"), rng.integers(0, 10, 300),
                              rng.random((50, 784)).astype("float32"), rng.integers(0, 10, 50),
                              kernels0, biases0)
    run = frameworks_torch.train(mlp, epochs=1, sync_period=3)
    assert run.framework == "PyTorch" and len(run.rows) == 1
    assert run.rows[0]["syncs"] == 0 and run.steps_since_sync == 2  # 2 steps, k = 3
    assert run.rows[0]["permutation_of_theta0"] and run.same_sync_as_keras
