"""Section 2's score tables (laperm.analysis.profile_scores) and its before/after figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laperm import viz  # noqa: E402
from laperm.analysis import profile_scores as ps  # noqa: E402


def test_short_name():
    assert ps.short_name("rms_similarity_fresh_init") == "rms θ0"
    assert ps.short_name("correlation_shuffled") == "corr null"
    assert ps.short_name("std_glorot_init") == "std θ0"
    assert ps.short_name("correlation") == "corr"


def _layer_table() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["a", "b"], "shape": [(4, 2), (2, 3)], "n_vectors": [2, 3],
        "vector_length": [4, 2], "std": [0.5, 0.7],
        "correlation": [0.99, 0.97], "rms_similarity": [0.80, 0.95],
        "correlation_init": [0.98, 0.96], "rms_similarity_init": [0.90, 0.90],
        "correlation_shuffled": [0.985, 0.95], "rms_similarity_shuffled": [0.85, 0.99]})


def test_score_table_orders_and_renames_and_adds_the_baseline_spread():
    baseline = [np.array([[1.0, -1.0], [1.0, -1.0]]), np.zeros(3), np.full((2, 3), 2.0)]
    shown = ps.score_table(_layer_table(), baseline=baseline)
    assert list(shown.columns) == ["name", "shape", "std θ0", "std", "corr θ0", "corr",
                                   "corr null", "rms θ0", "rms", "rms null"]
    assert shown["std θ0"].tolist() == [1.0, 0.0]  # the 1-D variable is skipped
    assert "std θ0" not in ps.score_table(_layer_table())


def test_score_finding_counts_layers_below_theta0_and_the_null():
    assert ps.score_finding(_layer_table(), "init", "X") == (
        "**X:** every correlation score in the table, including those of the initialisation "
        "and of the shuffled null, is at least 0.950. The rms similarity is lower than at "
        "initialisation in 1 of 2 layers and lower than the shuffled null in 2 of 2.")


def test_he_uniform_check_of_the_extreme_draw():
    limit = np.sqrt(6.0 / 8)  # fan_in 2 * 4 = 8 for a (2, 4, 3) kernel
    w = np.tile(np.array([-limit, limit], dtype=np.float64), 12).reshape(2, 4, 3)
    table = ps.he_uniform_check({"k": w, "b": np.zeros(3)})
    assert table["name"].tolist() == ["k"]
    assert table["max|w| / limit"].iloc[0] == pytest.approx(1.0)
    # values ±limit: std = limit, the uniform's std is limit / sqrt(3)
    assert table["std / (limit/sqrt3)"].iloc[0] == pytest.approx(np.sqrt(3.0))


def test_measure_and_table_by_shape():
    rng = np.random.default_rng(0)
    weights = {"k1": rng.uniform(-1, 1, (8, 4)), "k2": rng.uniform(-1, 1, (8, 4)),
               "k3": rng.uniform(-1, 1, (4, 2)), "bias": np.zeros(2)}
    fresh = {k: rng.uniform(-1, 1, w.shape) for k, w in weights.items()}
    scores = ps.measure(weights, fresh, "W", base_label="fresh_init", he_uniform=True)
    assert scores.table["name"].tolist() == ["k1", "k2", "k3"]
    assert scores.finding.startswith("**W:** every correlation score")
    assert list(scores.shown.columns)[-2:] == ["max|w| / limit", "std / (limit/sqrt3)"]
    by_shape = ps.table_by_shape(scores.table, weights)
    assert by_shape["kernels"].tolist() == [2, 1]
    assert by_shape.index.tolist() == [("(8, 4)", 8), ("(4, 2)", 4)]
    mean_std = scores.table["std"].iloc[:2].mean()
    assert by_shape["std"].iloc[0] == pytest.approx(mean_std)
    assert list(by_shape.columns)[:3] == ["kernels", "std", "corr θ0"]


def test_showcase_picks_six_kernels_by_position():
    shapes = [(3, 3, 3, 16), (3, 3, 16, 16), (3, 3, 16, 32), (1, 1, 16, 32), (3, 3, 32, 32),
              (3, 3, 64, 64), (64, 10)]
    trained = {f"k{i}": np.full(s, float(i)) for i, s in enumerate(shapes)}
    trained["bias"] = np.zeros(10)
    fresh = {k: -w for k, w in trained.items()}
    chosen, chosen_fresh = ps.showcase(trained, fresh)
    assert list(chosen) == ["k0", "k1", "k4", "k3", "k5", "k6"]
    assert list(chosen_fresh) == list(chosen)
    assert chosen_fresh["k4"][0, 0, 0, 0] == -4.0


def test_missing_checkpoints_note_says_where_to_get_them():
    note = ps.missing_checkpoints_note()
    assert ps.CHECKPOINTS_URL in note and "LAPERM_REFERENCE_DIR" in note


def test_adam_run_summary():
    run = ps.AdamRun(model=None, theta0=[], accuracy=0.91234, n_train=100, seconds=3.4,
                     scale="F2 + Adam, 1 epoch(s)", n_test=10000)
    assert run.summary == "F2 + Adam, 1 epoch(s): test accuracy 91.23% on 10,000 images, 3 s"


def test_train_with_adam_keeps_theta0_and_counts_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 28, 28)).astype("uint8")
    y = np.arange(40) % 10
    run = ps.train_with_adam("f2", ((x, y), (x[:20], y[:20])), epochs=1, n_train=20,
                             batch_size=10, seed=0)
    assert run.n_train == 20 and run.n_test == 20
    assert run.scale == "F2 + Adam, 1 epoch(s) on 20 MNIST training images (reduced)"
    assert len(run.theta0) == len(run.model.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(run.theta0, run.model.get_weights()))
    assert 0.0 <= run.accuracy <= 1.0


def test_plot_profiles_before_after_titles_the_top_row():
    theta0 = [np.random.default_rng(0).uniform(-1, 1, (6, 4)),
              np.random.default_rng(1).uniform(-1, 1, (4, 3))]
    trained = [2 * w for w in theta0]
    fig = viz.plot_profiles_before_after(trained, theta0, title="T")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[:2]] == ["θ0: dense 6x4", "θ0: dense 4x3"]
    assert fig._suptitle.get_text() == "T"
    plt.close("all")
