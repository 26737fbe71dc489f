"""Page 4.2's helpers: laperm.book.frameworks (no torch, no JAX) and its optax part."""

from __future__ import annotations

import numpy as np
import pytest

from laperm.book import frameworks

THETA0_TOY = np.array([0.50, -0.20, 0.10, -0.70, 0.30, 0.90], dtype="float32")
W_TOY = np.array([0.42, 0.35, -0.80, 0.05, 1.30, -0.15], dtype="float32")
SYNCED_TOY = np.array([0.5, 0.3, -0.7, 0.1, 0.9, -0.2], dtype="float32")  # by hand


def _tiny_setup(n_train: int = 300, n_test: int = 50) -> frameworks.MLPSetup:
    rng = np.random.default_rng(0)
    kernels0, biases0 = frameworks.mlp_theta0()
    return frameworks.MLPSetup(
        rng.random((n_train, 784)).astype("float32"), rng.integers(0, 10, n_train),
        rng.random((n_test, 784)).astype("float32"), rng.integers(0, 10, n_test),
        kernels0, biases0)


def test_installed_and_missing_messages():
    found = frameworks.installed(("numpy", "no_such_package_xyz"))
    assert found == {"numpy": True, "no_such_package_xyz": False}
    assert set(frameworks.MISSING) == {"torch", "optax"}


def test_tied_kernel_repeats_values_and_moves_them_by_eighths():
    theta0, current = frameworks.tied_kernel((784, 128), seed=0)
    assert theta0.shape == current.shape == (784, 128) and theta0.dtype == np.float32
    assert np.array_equal(theta0 * 8, np.round(theta0 * 8))
    assert set(np.unique((current - theta0) * 8)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    # zeroed with probability 1/2, or drawn as 0 (1 of 9 values): 1/2 + 1/18 = 0.556
    assert np.mean(theta0 == 0) == pytest.approx(0.556, abs=0.01)
    assert np.array_equal(frameworks.tied_kernel((784, 128), seed=0)[1], current)


def test_keras_synced_gives_the_toy_sync_by_hand():
    synced = frameworks.keras_synced(THETA0_TOY[:, None], W_TOY[:, None])  # one column
    np.testing.assert_array_equal(synced[:, 0], SYNCED_TOY)


def test_tie_count_and_sentence_count_per_column():
    current = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0]])  # columns [1 1 2], [1 2 2]
    assert frameworks.tie_count(current) == 2
    assert frameworks.ties_sentence(np.zeros((3, 2)), current) == (
        "2 tied current weights among 6 (100% of theta_0 is zero)")


def test_sync_table_compares_with_the_keras_sync():
    theta0 = THETA0_TOY[:, None]
    table = frameworks.sync_table({frameworks.KERAS: SYNCED_TOY[:, None],
                                   "same": SYNCED_TOY[:, None].copy(),
                                   "other": W_TOY[:, None]}, theta0)
    assert list(table["every value equal to laperm.LaPerm's"]) == [True, True, False]
    assert list(table["a permutation of theta_0 in every vector"]) == [True, True, False]


def test_mlp_theta0_and_batches():
    kernels, biases = frameworks.mlp_theta0((784, 128, 64, 10), seed=1)
    assert [k.shape for k in kernels] == [(784, 128), (128, 64), (64, 10)]
    assert all(np.abs(k).max() <= np.sqrt(6 / k.shape[0]) for k in kernels)
    assert all(not b.any() for b in biases)
    mlp = _tiny_setup(300)
    batches = mlp.batches(0)
    assert [len(b) for b in batches] == [128, 128]  # the last 44 images are dropped
    assert len(np.unique(np.concatenate(batches))) == 256
    assert all(np.array_equal(a, b) for a, b in zip(batches, mlp.batches(0)))
    assert not np.array_equal(batches[0], mlp.batches(1)[0])


def test_final_sync_table_and_findings_by_hand(capsys):
    run = frameworks.TrainedRun("JAX + optax", [dict(
        framework="JAX + optax", epoch=1, syncs=1, test_acc_synced=0.559, test_acc_inner=0.6,
        permutation_of_theta0=True)], True, 5)
    table = frameworks.final_sync_table([None, run])
    assert table.to_dict("records") == [{"framework": "JAX + optax",
                                         "steps since the last sync": 5,
                                         "same sync as laperm.LaPerm's": True}]
    assert frameworks.final_sync_table([None, None]).empty
    synced = {frameworks.KERAS: SYNCED_TOY, "laperm.optax": SYNCED_TOY}
    lines = frameworks.findings(synced, np.zeros((784, 128)), [None, run], 2000,
                                {"torch": False, "optax": True})
    assert lines[0] == ("One sync of a 784 x 128 kernel with 100224 ties: "
                        "laperm.optax equals laperm.LaPerm.")
    assert lines[1] == ("JAX + optax: 1 epochs of 2000 images, 1 syncs; test accuracy 55.90% on "
                        "synchronised weights; every kernel a permutation of theta_0 after each "
                        "epoch: True; the sync of the trained weights equals laperm.LaPerm's: "
                        "True.")
    assert lines[2] == f"Skipped: {frameworks.MISSING['torch']}"
    only_keras = frameworks.findings({frameworks.KERAS: SYNCED_TOY}, np.zeros((2, 2)), [], 10, {})
    assert only_keras == ["Only the Keras implementation is installed here."]
    frameworks.show_epochs(None, "PyTorch part skipped.")
    assert capsys.readouterr().out == "PyTorch part skipped.\n"


def test_optax_sync_and_training_agree_with_keras():
    pytest.importorskip("optax")
    from laperm.book import frameworks_optax

    theta0, current = frameworks.tied_kernel((64, 8), seed=3)
    np.testing.assert_array_equal(frameworks_optax.synced(theta0, current),
                                  frameworks.keras_synced(theta0, current))
    run = frameworks_optax.train(_tiny_setup(300), epochs=1, sync_period=1)
    assert run.framework == "JAX + optax" and len(run.rows) == 1
    assert run.rows[0]["syncs"] == 2  # two batches of 128, a sync after each
    assert run.rows[0]["permutation_of_theta0"] and run.same_sync_as_keras
    assert run.steps_since_sync == 0


def test_describe_counts_steps_and_syncs_from_the_data_held():
    mlp = _tiny_setup(n_train=300, n_test=50)  # 2 batches of 128 an epoch
    assert mlp.describe(epochs=3, sync_period=4) == (
        "300 training images (2 batches of 128 an epoch), 50 test images;\n3 epochs with "
        "k = 4: 6 steps, 1 sync.")
    assert mlp.describe(epochs=1, sync_period=10).endswith("1 epoch with k = 10: 2 steps, 0 syncs.")


def test_show_missing_lists_each_skipped_part_for_the_status_page(capsys):
    from laperm.book.page import Section

    sec = Section(section="04_2_torch_and_jax", profile="smoke", params={}, overridden=[])
    frameworks.show_missing({"torch": False, "optax": True}, sec)
    assert sec.skipped_parts == [frameworks.PARTS["torch"]]
    assert capsys.readouterr().out.count("Markdown object") == 1  # one line shown
    frameworks.show_missing({"torch": True, "optax": True}, sec)
    assert sec.skipped_parts == [frameworks.PARTS["torch"]]


def test_a_trainings_table_reads_in_words_and_percentages():
    run = frameworks.TrainedRun("PyTorch", [dict(
        framework="PyTorch", epoch=1, syncs=1, test_acc_synced=0.559, test_acc_inner=0.6,
        permutation_of_theta0=True)], True, 5)
    assert run.table().to_dict("records") == [{
        "framework": "PyTorch", "epoch": 1, "syncs": 1, "test acc, synchronised": "55.90%",
        "test acc, inner weights": "60.00%", "permutation of θ0": True}]
