"""Smoke tests of laperm.viz on small inputs (Agg backend, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from laperm import data, viz  # noqa: E402
from laperm.analysis import comparisons, permutations  # noqa: E402
from laperm.analysis import profiles as P  # noqa: E402
from laperm.book import display  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _records(theta0, n_syncs, rng):
    """Ranks after each of n_syncs random 'syncs' (what PermutationRecorder stores)."""
    out = [P.ranks(theta0)]
    for _ in range(n_syncs - 1):
        out.append(P.ranks(rng.normal(size=theta0.shape)))
    return out


def test_set_style_runs():
    with plt.rc_context():  # do not leak the style into other tests
        viz.set_style()
        viz.set_style("paper", font_scale=0.9, rc={"figure.dpi": 80})
        assert plt.rcParams["figure.dpi"] == 80


def test_plot_weight_profiles(rng):
    w = rng.normal(size=(30, 12))
    ax = viz.plot_weight_profiles(w, max_vectors=5, title="dense")
    assert isinstance(ax, Axes)
    (lc,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lc.get_segments()) == 5
    assert len(ax.lines) == 1  # the mean profile
    assert ax.get_title() == "dense"
    assert ax.get_xlim() == (0.0, 1.0)


def test_plot_weight_profiles_on_given_ax_with_baseline(rng):
    fig, ax = plt.subplots()
    w = rng.normal(size=(3, 3, 2, 4))
    out = viz.plot_weight_profiles(w, ax=ax, baseline=w * 0.5, max_points=10)
    assert out is ax
    assert len(ax.lines) == 2
    assert len(ax.collections[0].get_segments()) == 4
    long = rng.normal(size=(2000, 3))
    ax2 = viz.plot_weight_profiles(long, max_points=100)
    assert ax2.collections[0].get_segments()[0].shape == (100, 2)


def test_plot_profile_grid(rng):
    weights = [rng.normal(size=(8, 4)), rng.normal(size=4), rng.normal(size=(3, 3, 2, 5)),
               rng.normal(size=(5, 3))]
    fig = viz.plot_profile_grid(weights, ncols=2, baseline=weights)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3  # one per kernel, the bias is skipped
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    with pytest.raises(ValueError, match="no variable with ndim >= 2"):
        viz.plot_profile_grid([np.zeros(3)])


def test_a_profile_grid_names_its_axes_on_the_outer_panels_and_overlaps_nothing(rng):
    weights = [rng.normal(size=(9, 4 + i)) for i in range(8)]  # 8 kernels: 2 rows of 4
    fig = viz.plot_profile_grid(weights, ncols=4, baseline=weights, title="a long title " * 4)
    axes = fig.axes
    assert [bool(ax.get_ylabel()) for ax in axes] == [True, False, False, False] * 2
    assert [bool(ax.get_xlabel()) for ax in axes] == [False] * 4 + [True] * 4
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [fig._suptitle.get_window_extent(renderer)]
    for ax in axes:
        boxes += [ax.title.get_window_extent(renderer),
                  ax.xaxis.label.get_window_extent(renderer)]
    boxes = [b for b in boxes if b.width > 0]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_plot_profile_grid_keras_model():
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                              keras.layers.Dense(3)])
    fig = viz.plot_profile_grid(model)
    assert len(fig.axes) == 2
    assert "kernel" in fig.axes[0].get_title()


def test_plot_vectors_as_images(rng):
    w = rng.normal(size=(784, 10))
    fig = viz.plot_vectors_as_images(w)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 11  # ten images + colour bar
    images = [ax.images[0] for ax in fig.axes[:10]]
    assert all(im.get_array().shape == (28, 28) for im in images)
    lo, hi = images[0].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(w).max())
    assert len({im.get_clim() for im in images}) == 1  # shared scale
    np.testing.assert_allclose(images[3].get_array(), w[:, 3].reshape(28, 28))

    fig2 = viz.plot_vectors_as_images(rng.normal(size=(16, 4)), image_shape=(4, 4),
                                      vectors=[0, 2], colorbar=False)
    assert len(fig2.axes) == 2
    with pytest.raises(ValueError, match=r"cannot be shown as \(20, 20\) images"):
        viz.plot_vectors_as_images(w, image_shape=(20, 20))


def test_plot_permutation_trace(rng):
    theta0 = rng.normal(size=(12, 3))
    recs = _records(theta0, 5, rng)
    ax = viz.plot_permutation_trace(recs, vector=1, n_weights=4)
    assert isinstance(ax, Axes)
    assert len(ax.lines) == 4
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(5))
    # rank 0 = the smallest initial value: its first position is theta0's argmin
    assert y[0] == np.argmin(theta0[:, 1])


def test_plot_permutation_trace_positions(rng):
    theta0 = rng.normal(size=(10, 2))
    thetas = [theta0] + [P.repermute(theta0, rng.normal(size=theta0.shape)) for _ in range(3)]
    maps = [P.permutation_from(theta0, t) for t in thetas]
    fig, ax = plt.subplots()
    out = viz.plot_permutation_trace(maps, kind="positions", weights=[0, 5, 9],
                                     steps=[0, 10, 20, 30], ax=ax)
    assert out is ax and len(ax.lines) == 3
    x, y = ax.lines[1].get_data()
    np.testing.assert_array_equal(x, [0, 10, 20, 30])
    np.testing.assert_array_equal(y, [m[0, 5] for m in maps])


def test_animate_reconnection_and_jshtml(rng):
    theta0 = rng.normal(size=(16, 3))
    recs = _records(theta0, 4, rng)
    anim = viz.animate_reconnection(theta0, recs, image_shape=(4, 4), vector=[0, 2],
                                    interval=50)
    assert isinstance(anim, FuncAnimation)
    assert len(list(anim.new_frame_seq())) == 4
    assert len(anim._fig.axes) == 2
    html = display.to_jshtml(anim)
    assert isinstance(html, str) and "<script" in html

    sub = [r[[2]] for r in recs]  # only vector 2 recorded
    anim2 = viz.animate_reconnection(theta0, sub, image_shape=(4, 4), vector=2,
                                     record_vectors=[2], include_initial=True)
    assert len(list(anim2.new_frame_seq())) == 5
    # the last frame holds theta0's values of vector 2, re-ordered
    anim2._func(4)
    shown = anim2._fig.axes[0].images[0].get_array().reshape(-1)
    np.testing.assert_allclose(np.sort(shown), np.sort(theta0[:, 2]))
    np.testing.assert_allclose(shown, P.from_ranks(theta0, sub[-1], vectors=[2])[0])
    assert "<script" in display.to_jshtml(anim2, default_mode="once")
    with pytest.raises(ValueError):
        viz.animate_reconnection(theta0, sub, image_shape=(4, 4), vector=1,
                                 record_vectors=[2])


def _history(rng):
    rows = []
    for run in ("LaPerm", "Adam"):
        for seed in range(2):
            for epoch in range(4):
                rows.append({"run": run, "seed": seed, "epoch": epoch,
                             "accuracy": 0.5 + 0.1 * epoch + 0.01 * rng.random(),
                             "val_accuracy": 0.5 + 0.09 * epoch + 0.01 * rng.random()})
    return pd.DataFrame(rows)


def test_plot_training_curves_wide_and_long(rng):
    df = _history(rng)
    ax = viz.plot_training_curves(df, y="val_accuracy")
    assert isinstance(ax, Axes)
    assert len([ln for ln in ax.lines if len(ln.get_xdata()) == 4]) == 2  # two runs
    assert ax.get_ylabel() == "val_accuracy"

    ax2 = viz.plot_training_curves(df, y=["accuracy", "val_accuracy"])
    assert len([ln for ln in ax2.lines if len(ln.get_xdata()) == 4]) == 4

    long = df.melt(id_vars=["run", "seed", "epoch"], var_name="metric", value_name="value")
    fig, ax3 = plt.subplots()
    out = viz.plot_training_curves(long, y="accuracy", ax=ax3, errorbar=None)
    assert out is ax3
    assert len([ln for ln in ax3.lines if len(ln.get_xdata()) == 4]) == 2
    with pytest.raises(KeyError):
        viz.plot_training_curves(df, y="val_loss")


def test_plot_sawtooth(rng):
    steps = np.arange(1, 61)
    acc = 0.8 + 0.002 * (steps % 20) - 0.01 * (steps % 20 == 0)
    df = pd.DataFrame({"step": steps, "accuracy": acc, "synced": steps % 20 == 0})
    ax = viz.plot_sawtooth(df, sync_period=20)
    assert isinstance(ax, Axes)
    assert len(ax.lines) == 1
    (lc,) = ax.collections
    assert len(lc.get_segments()) == 3  # syncs at 20, 40, 60

    ax2 = viz.plot_sawtooth(df)  # from the "synced" column
    assert len(ax2.collections[0].get_segments()) == 3

    two = pd.concat([df.assign(run="a"), df.assign(run="b")])
    fig, ax3 = plt.subplots()
    out = viz.plot_sawtooth(two, sync_steps=[20, 40], ax=ax3)
    assert out is ax3 and len(ax3.lines) == 2
    assert len(ax3.collections[0].get_segments()) == 2


def test_plot_run_curves(rng):
    def history(offset):
        return pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": offset + rng.random(3) / 10,
                             "test_accuracy": offset + rng.random(3) / 10})

    fig = viz.plot_run_curves({"a": pd.concat([history(0.5), history(0.5)]), "b": history(0.8)},
                              paper_lines={"paper": 0.9}, suptitle="t")
    left, right = fig.axes[:2]
    assert left.get_legend() is None and right.get_legend() is None
    (legend,) = fig.legends  # one legend for both panels, below them
    assert [t.get_text() for t in legend.get_texts()][-1] == "paper"
    assert fig._suptitle.get_text() == "t"
    plt.close(fig)


def test_too_few_axes_is_a_clear_error(rng):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 panels needed, 1 axes given"):
        viz.plot_vectors_as_images(rng.normal(size=(16, 2)), image_shape=(4, 4), axes=[ax])
    plt.close(fig)


def test_wide_figures_are_shown_narrower_with_the_same_fonts():
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), dpi=100)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set_title("a title in 10 pt", fontsize=10)
    png = display.fitted_png(fig, max_px=840)
    assert 600 < display._png_width(png) <= 840
    assert fig.get_size_inches()[0] < 12  # narrower in inches, not rendered at a lower dpi
    assert axes[0].title.get_fontsize() == 10
    small, _ = plt.subplots(figsize=(4, 3), dpi=100)
    assert display.fitted_png(small, max_px=840) and small.get_size_inches()[0] == 4  # untouched
    plt.close("all")


def test_rank_heatmap_ends_in_the_final_order_and_settling_counts_moves():
    n = 20
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=(2, n))
    ranks0 = np.argsort(np.argsort(theta0, axis=1), axis=1)
    # sync 1: swap the two largest values of unit 0; sync 2: no change
    ranks1 = ranks0.copy()
    a, b = np.where(ranks0[0] == n - 1)[0][0], np.where(ranks0[0] == n - 2)[0][0]
    ranks1[0, a], ranks1[0, b] = ranks1[0, b], ranks1[0, a]
    records = [ranks0, ranks1, ranks1.copy()]
    ax = viz.plot_rank_heatmap(records, vector=0)
    image = ax.images[0].get_array()
    assert image.shape == (n, 3)
    assert list(image[:, -1]) == list(range(n))  # rows ordered by the final value
    table = permutations.settling_table(records, vector=0, share=0.2)
    assert table["all"].tolist() == [2 / n, 0.0]
    assert table["extreme"].tolist() == [0.5, 0.0]  # 2 of the 4 extreme values moved
    assert table["middle"].tolist() == [0.0, 0.0]
    assert len(viz.plot_settling(records, share=0.2).lines) == 3
    plt.close("all")


def test_three_evaluations_only_for_histories_that_have_them():
    h = pd.DataFrame({"epoch": [1, 2, 3], "test_accuracy": [0.5, 0.6, 0.7],
                      "test_accuracy_stale_bn": [0.2, 0.4, 0.65],
                      "test_accuracy_unsynced": [0.5, 0.55, 0.7], "learning_rate": [1e-3] * 3})
    old = h.drop(columns="test_accuracy_stale_bn")
    assert viz.plot_three_evaluations({"old": old}) is None
    fig = viz.plot_three_evaluations({"new": h, "old": old})
    assert len(fig.axes[0].lines) == 3 and len([a for a in fig.axes if a.lines]) == 1
    table = comparisons.three_evaluations_table(h, epochs=(1, 2))
    assert table["epoch"].tolist() == [1, 2, 3]  # the last epoch is always shown
    assert table["re-estimated − stale (points)"].round(1).tolist() == [30.0, 20.0, 5.0]
    plt.close("all")


def test_augmented_images_are_the_pipelines_draws(rng):
    # a bright square on black: every augmented pixel stays within the image's range
    # (nearest fill, bilinear interpolation), the draws move it, and a seed repeats them
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    grid = data.augmented_images(images, "mnist", draws=3, seed=1)
    assert grid.shape == (4, 3, 28, 28, 1) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[0, ..., 0], images / 255.0)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    assert all(not np.array_equal(grid[d], grid[0]) for d in (1, 2, 3))
    assert not np.array_equal(grid[1], grid[2])
    np.testing.assert_array_equal(grid, data.augmented_images(images, "mnist", draws=3, seed=1))
    # no augmentation: every draw is the image
    same = data.augmented_images(images, None, draws=2)
    np.testing.assert_array_equal(same[1], same[0])
    with pytest.raises(ValueError, match="must be"):
        data.augmented_images(np.zeros((28, 28)), "mnist")
    assert data.describe_augmentation("mnist") == "rotation ±10°, zoom ±10%, shift ±10%"
    assert data.describe_augmentation(None) == "no augmentation"
    fig = viz.plot_augmented(rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8), "cifar_conv",
                             draws=2)
    assert len(fig.axes) == 3 * 2
    plt.close(fig)
