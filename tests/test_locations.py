"""Section 3's measurement: theta_0 re-permuted into the order of theta_t."""

from __future__ import annotations

import numpy as np
import pytest

from laperm.analysis import locations, profiles


def test_random_repermutation_keeps_each_vector_s_values():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(6, 4)), rng.normal(size=4)
    shuffled, same_bias = locations.random_repermutation([kernel, bias], seed=1)
    assert same_bias is bias  # 1-D variables are left alone
    assert profiles.is_permutation_of(kernel, shuffled)
    assert not np.array_equal(kernel, shuffled)


def test_rank_correlation_and_relative_change():
    rng = np.random.default_rng(0)
    k0 = [rng.normal(size=(20, 8))]
    assert locations.rank_correlation(k0, k0) == pytest.approx(1.0)
    assert locations.rank_correlation(k0, [-k0[0]]) == pytest.approx(-1.0)
    assert locations.relative_change(k0, k0) == 0.0
    assert locations.relative_change(k0, [2 * k0[0]]) == pytest.approx(1.0)


def test_run_measures_the_repermuted_network(data_dir):
    result = locations.run("f2", 1, 512, 128, test_images=200, n_checkpoints=3, seed=0,
                           data_dir=data_dir)
    curve = result.curve
    assert list(curve["step"]) == [0, 1, 2, 4]  # theta_0, then geometric checkpoints
    first = curve.iloc[0]
    # at step 0 theta_t is theta_0: re-permuting it changes nothing
    assert first["theta_t"] == first["repermuted theta_0"]
    assert first["rank correlation with theta_0"] == pytest.approx(1.0)
    assert first["relative value change"] == 0.0
    assert "repermuted theta_0 (biases too)" not in curve  # F2 has no biases
    assert 0 <= result.random_acc <= 1 and result.n_test == 200
    assert "512 MNIST training images = 4 steps" in result.scale
