"""Figures for the Train-by-Reconnect companion (matplotlib / seaborn).

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020.

* :func:`plot_weight_profiles`, :func:`plot_profile_grid`: sorted weight
  vectors collapsing onto one curve, the weight profile (Section 2).
* :func:`plot_vectors_as_images`: the ten 784-weight vectors of an MNIST
  linear model (F1) as 28x28 images (Sections 4, 5.5).
* :func:`plot_permutation_trace`, :func:`animate_reconnection`: where weights
  travel from sync to sync (Section 4; :func:`laperm.book.to_jshtml` plays an animation).
* :func:`plot_training_curves`: LaPerm vs Adam curves of one or several runs
  (Section 5).
* :func:`plot_sawtooth`: per-step accuracy or loss with the syncs marked, the
  saw-tooth of Section 5.3.

Every function accepts an optional ``ax`` (``axes`` for multi-panel figures)
and returns the Axes, Figure or Animation it drew; none calls ``plt.show()``.
Weight arguments follow :mod:`laperm.analysis.profiles` (NumPy arrays, Keras variables
or tensors; row view = one row per weight vector).
"""

from __future__ import annotations


from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import animation
from matplotlib.collections import LineCollection

from laperm.analysis import profiles as P
from laperm.analysis.permutations import positions, record_rows, settling_table
from laperm.analysis.records import has_three_evaluations
from laperm.data import augmented_images, describe_augmentation

__all__ = [
    "set_style",
    "plot_weight_profiles",
    "plot_profile_grid",
    "plot_vectors_as_images",
    "plot_permutation_trace",
    "plot_rank_heatmap",
    "plot_three_evaluations",
    "plot_speedups",
    "plot_settling",
    "animate_reconnection",
    "plot_training_curves",
    "plot_sawtooth",
]


def set_style(context: str = "notebook", font_scale: float = 1.0,
              rc: dict | None = None) -> None:
    """The project's plotting style: seaborn ``whitegrid`` with readable sizes.

    Args:
        context: seaborn context (``"paper"``, ``"notebook"``, ``"talk"``).
        font_scale: multiplies every font size.
        rc: extra matplotlib rc settings, e.g. ``{"figure.dpi": 120}``.
    """
    base = {
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.titlesize": "medium",
        "axes.labelsize": "medium",
        "legend.fontsize": "small",
        "legend.frameon": False,
        "image.cmap": "viridis",
    }
    base.update(rc or {})
    sns.set_theme(style="whitegrid", context=context, font_scale=font_scale, rc=base)


def _new_ax(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


# ---------------------------------------------------------------------------
# Section 2: weight profiles
# ---------------------------------------------------------------------------


def _panels(n: int, ncols: int, axes, figsize, sharey: bool = False):
    """``n`` panels: a new grid of at most ``ncols`` columns, or the given Axes.

    Args:
        n: panels needed.
        ncols: columns of a new grid.
        axes: None for a new figure, else a sequence of at least ``n`` Axes.
        figsize: ``(nrows, ncols) -> (width, height)`` of a new figure.
        sharey: share the y axis in a new grid.

    Returns:
        ``(figure, [n Axes])``; unused Axes of a new grid are removed.
    """
    if axes is None:
        ncols = max(1, min(ncols, n))
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(nrows, ncols, squeeze=False, sharey=sharey,
                                 figsize=figsize(nrows, ncols))
        flat = list(grid.ravel())
        for extra in flat[n:]:
            fig.delaxes(extra)
        return fig, flat[:n]
    flat = list(np.ravel(axes))
    if len(flat) < n:
        raise ValueError(f"{n} panels needed, {len(flat)} axes given")
    return flat[0].figure, flat[:n]


def _rank_grid(n: int, max_points: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of sorted positions to draw and their normalised ranks."""
    if max_points is not None and n > max_points:
        idx = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))
    else:
        idx = np.arange(n)
    x = idx / (n - 1) if n > 1 else np.full(len(idx), 0.5)
    return idx, x


def plot_weight_profiles(
    w: Any,
    ax=None,
    max_vectors: int | None = 200,
    max_points: int | None = 512,
    title: str | None = None,
    color: Any = "C0",
    alpha: float | None = None,
    linewidth: float = 0.6,
    show_mean: bool = True,
    baseline: Any = None,
    baseline_label: str = "init",
    legend: bool = True,
    seed: int | None = 0,
):
    """Draw a layer's sorted weight vectors and its mean profile (Section 2).

    Each weight vector (:func:`laperm.analysis.profiles.weight_vectors`) is sorted and
    drawn as one thin translucent line against its normalised rank (0 =
    smallest entry, 1 = largest), so vectors of any length share an x axis.
    If they lie on one curve, the layer has a *weight profile*.

    Args:
        w: a variable of any rank (a kernel, normally).
        ax: Axes to draw on; a new figure if ``None``.
        max_vectors: draw at most this many vectors (a random subset chosen
            with ``seed``); ``None`` draws all.  The mean profile always uses
            every vector.
        max_points: draw each sorted vector at most at this many evenly
            spaced ranks (exact values at those ranks; keeps very long
            vectors, e.g. VGG16 fc1's 25088, cheap).  ``None``: all points.
        title: Axes title; default ``"<n> sorted vectors of length <m>"``.
        color: colour of the vector lines.
        alpha: opacity of the vector lines; default adapts to their number.
        linewidth: width of the vector lines.
        show_mean: draw the mean profile as a black line.
        baseline: optional weights (e.g. theta_0) whose mean profile is drawn
            dashed, to compare with initialisation.
        baseline_label: legend label suffix for ``baseline``.
        legend: add a legend when a mean profile is drawn.
        seed: seed for the vector subset.

    Returns:
        The Axes.  The vector lines are one ``LineCollection`` in
        ``ax.collections``; the mean (and baseline) profiles are
        ``ax.lines``.
    """
    ax = _new_ax(ax)
    s = P.sorted_profiles(w)
    n_vectors, n = s.shape
    chosen = np.arange(n_vectors)
    if max_vectors is not None and n_vectors > max_vectors:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(n_vectors, size=max_vectors, replace=False))
    idx, x = _rank_grid(n, max_points)
    ys = s[chosen][:, idx].astype(np.float64)
    if alpha is None:
        alpha = float(np.clip(8.0 / max(1, len(chosen)), 0.03, 0.6))
    segments = np.stack([np.broadcast_to(x, ys.shape), ys], axis=-1)
    lc = LineCollection(segments, colors=color, linewidths=linewidth, alpha=alpha)
    ax.add_collection(lc, autolim=True)
    if show_mean and n_vectors:
        ax.plot(x, s.mean(axis=0, dtype=np.float64)[idx], color="black", lw=1.6,
                label="mean profile")
    if baseline is not None:
        sb = P.sorted_profiles(baseline)
        bidx, bx = _rank_grid(sb.shape[1], max_points)
        ax.plot(bx, sb.mean(axis=0, dtype=np.float64)[bidx], color="0.35", lw=1.4,
                ls="--", label=f"mean profile ({baseline_label})")
    ax.autoscale_view()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("normalised rank within vector")
    ax.set_ylabel("weight value")
    ax.set_title(title if title is not None else f"{n_vectors} sorted vectors of length {n}")
    if legend and ax.lines:
        ax.legend(loc="upper left")
    return ax


def plot_profile_grid(
    model_or_list: Any,
    ncols: int = 3,
    max_vectors: int | None = 100,
    max_points: int | None = 256,
    min_ndim: int = 2,
    baseline: Any = None,
    show_scores: bool = True,
    panel_size: tuple[float, float] = (3.4, 2.7),
    sharey: bool = False,
    axes=None,
    **kwargs: Any,
):
    """One weight-profile panel per kernel of a model (Section 2).

    Args:
        model_or_list: a Keras model or layer, a ``{name: array}`` mapping or
            a list of arrays (see :func:`laperm.analysis.profiles.named_weights`).
        ncols: panels per row.
        max_vectors: vectors drawn per panel (see :func:`plot_weight_profiles`).
        max_points: points per drawn vector.
        min_ndim: only variables with at least this many dimensions.
        baseline: optional weights of the same structure (e.g. theta_0),
            matched by position; each panel also shows the baseline's mean
            profile dashed.
        show_scores: write the correlation and RMS similarity scores
            (:func:`laperm.analysis.profiles.profile_similarity`) in each panel.
        panel_size: ``(width, height)`` of one panel in inches.
        sharey: share the y axis across panels.
        axes: optional sequence of Axes (at least one per panel).
        **kwargs: passed to :func:`plot_weight_profiles`.

    Returns:
        The Figure; it holds exactly one Axes per selected variable.

    Raises:
        ValueError: if no variable has ``ndim >= min_ndim``.
    """
    items = P.named_weights(model_or_list)
    base = P.named_weights(baseline) if baseline is not None else None
    if base is not None and len(base) != len(items):
        raise ValueError(f"baseline has {len(base)} variables, the model {len(items)}")
    keep = [i for i, (_, a) in enumerate(items) if a.ndim >= min_ndim]
    if not keep:
        raise ValueError(f"no variable with ndim >= {min_ndim} to plot")
    n = len(keep)
    fig, flat = _panels(n, ncols, axes, lambda nr, nc: (panel_size[0] * nc, panel_size[1] * nr),
                        sharey=sharey)
    for panel, i in zip(flat, keep):
        name, arr = items[i]
        plot_weight_profiles(
            arr, ax=panel, max_vectors=max_vectors, max_points=max_points,
            title=f"{name}\n{tuple(arr.shape)}",
            baseline=None if base is None else base[i][1],
            legend=False, **kwargs,
        )
        panel.set_xlabel("normalised rank")
        if show_scores:
            corr = P.profile_similarity(arr, "correlation")
            rms = P.profile_similarity(arr, "rms")
            text = f"corr {corr:.4f}\nrms {rms:.3f}"
            if base is not None:
                b = base[i][1]
                text += (f"\ninit: {P.profile_similarity(b, 'correlation'):.4f}, "
                         f"{P.profile_similarity(b, 'rms'):.3f}")
            panel.text(0.02, 0.97, text, transform=panel.transAxes, va="top",
                       ha="left", fontsize="x-small",
                       bbox=dict(boxstyle="round", fc="white", alpha=0.7, lw=0))
    if axes is None:
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Section 4: vectors as images, permutation traces, animation
# ---------------------------------------------------------------------------


def _check_image_shape(length: int, image_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {shape}")
    if shape[0] * shape[1] != length:
        raise ValueError(
            f"vectors of length {length} cannot be shown as {shape} images "
            f"({shape[0] * shape[1]} pixels)"
        )
    return shape


def plot_vectors_as_images(
    w: Any,
    image_shape: Sequence[int] = (28, 28),
    vectors: Sequence[int] | None = None,
    ncols: int = 5,
    cmap: str = "RdBu_r",
    vmax: float | None = None,
    titles: Sequence[str] | None = None,
    colorbar: bool = True,
    panel_size: float = 1.9,
    axes=None,
):
    """Weight vectors as images, e.g. F1's ten 784-weight vectors (Section 4).

    For a Dense kernel ``(784, 10)`` on flattened 28x28 MNIST images, column
    ``j`` holds the weight of every pixel for class ``j``; reshaped to 28x28
    it shows which pixels vote for the class.  A diverging colormap is centred
    at 0 and every panel shares one colour scale.

    Args:
        w: a variable whose vectors have ``prod(image_shape)`` entries.
        image_shape: ``(height, width)`` of one image, in the input's
            flattening order (row-major for ``keras.layers.Flatten``).
        vectors: indices of the vectors to show; default all.
        ncols: images per row.
        cmap: a diverging colormap.
        vmax: colour scale ``[-vmax, vmax]``; default the largest ``|w|`` of
            the shown vectors.
        titles: one title per image; default ``"unit j"``.
        colorbar: add one shared colour bar (one extra Axes).
        panel_size: size of one panel in inches.
        axes: optional sequence of Axes, one per image.

    Returns:
        The Figure: one Axes with one image per vector, plus the colour bar's
        Axes if ``colorbar``.
    """
    rows = P.weight_vectors(w)
    shape = _check_image_shape(rows.shape[1], image_shape)
    chosen = list(range(rows.shape[0])) if vectors is None else [int(v) for v in vectors]
    n = len(chosen)
    if n == 0:
        raise ValueError("no vector to show")
    fig, flat = _panels(n, ncols, axes, lambda nr, nc: (
        panel_size * nc + (0.8 if colorbar else 0), panel_size * nr + 0.3))
    data = rows[chosen].astype(np.float64)
    if vmax is None:
        vmax = float(np.nanmax(np.abs(data))) if data.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    im = None
    for k, (panel, j) in enumerate(zip(flat, chosen)):
        im = panel.imshow(data[k].reshape(shape), cmap=cmap, vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        panel.set_xticks([])
        panel.set_yticks([])
        panel.grid(False)
        panel.set_title(titles[k] if titles is not None else f"unit {j}", fontsize="small")
    if colorbar and im is not None:
        fig.colorbar(im, ax=flat, shrink=0.8, label="weight")
    return fig


def plot_augmented(images: Any, augmentation: str | None, draws: int = 4, seed: int = 0,
                   panel_size: float = 1.1):
    """A grid of :func:`augmented_images`: the images on top, each draw below.

    Returns:
        The Figure (one Axes per image and draw).
    """
    grid = augmented_images(images, augmentation, draws, seed)
    rows, n = grid.shape[:2]
    fig, axes = plt.subplots(rows, n, figsize=(panel_size * n, panel_size * rows + 0.3),
                             squeeze=False)
    gray = grid.shape[-1] == 1
    for r in range(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(grid[r, c, ..., 0] if gray else grid[r, c], cmap="gray" if gray else None,
                      vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[r, 0].set_ylabel("original" if r == 0 else f"draw {r}", fontsize="small")
    fig.suptitle(f"{describe_augmentation(augmentation)}; each column one image",
                 fontsize="small")
    fig.tight_layout()
    return fig


def plot_rank_heatmap(
    records: Sequence[Any],
    vector: int = 0,
    steps: Sequence[float] | None = None,
    layout: str = "rows",
    ax=None,
    cmap: str = "coolwarm",
    title: str | None = None,
):
    """Where every initial value of one vector sits after each sync, as a heatmap (Section 4).

    Rows are the vector's positions, ordered by the value they hold at the
    last record; columns are the records (theta_0, then each sync); the colour
    is the rank of the initial value at that position (blue: the smallest
    initial values, red: the largest).  The last column is a smooth gradient
    by construction; the earlier columns show how far from that order the
    values started, and from which sync on each part of the vector settles.

    Args:
        records: as in :func:`plot_permutation_trace` with ``kind="ranks"``.
        vector: row of the records (output unit).
        steps: labels of the records (e.g. optimizer steps).
        layout: ``"rows"`` or ``"variable"``.
        ax: Axes to draw on.
        cmap: colormap of the initial value ranks.
        title: Axes title.

    Returns:
        The Axes (its image is ``ax.images[0]``).
    """
    ax = _new_ax(ax)
    ranks = np.stack([record_rows(r, layout)[vector] for r in records], axis=1)  # (n, T)
    order = np.argsort(ranks[:, -1], kind="stable")
    n, t = ranks.shape
    image = ax.imshow(ranks[order], aspect="auto", cmap=cmap, interpolation="nearest",
                      vmin=0, vmax=n - 1)
    labels = (["θ0"] + [f"{s:g}" for s in steps[1:]]) if steps is not None else (
        ["θ0"] + [str(i) for i in range(1, t)])
    ticks = np.unique(np.linspace(0, t - 1, min(t, 8)).round().astype(int))
    ax.set_xticks(ticks, [labels[i] for i in ticks])
    ax.set_xlabel("step of the sync" if steps is not None else "sync")
    ax.set_ylabel("position, ordered by its final value")
    ax.set_yticks([])
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    cbar.set_label("rank of the initial value held")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def plot_settling(records: Sequence[Any], vector: int = 0, share: float = 0.1,
                  steps: Sequence[float] | None = None, layout: str = "rows", ax=None,
                  title: str | None = None):
    """:func:`laperm.analysis.permutations.settling_table` as lines: do the extreme values settle first?"""
    ax = _new_ax(ax)
    table = settling_table(records, vector, share, layout)
    x = table["sync"] if steps is None else np.asarray(steps, dtype=float)[1:]
    styles = {"extreme": ("C3", "-", f"the {share:.0%} most extreme initial values"),
              "middle": ("C0", "-", f"the {share:.0%} initial values nearest the median"),
              "all": ("0.4", ":", "all values")}
    for column, (colour, ls, label) in styles.items():
        ax.plot(x, table[column], ls, color=colour, marker="o", ms=3, label=label)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("sync" if steps is None else "step")
    ax.set_ylabel("moved since the previous sync")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return ax


def plot_permutation_trace(
    records: Sequence[Any],
    vector: int = 0,
    n_weights: int = 8,
    weights: Sequence[int] | None = None,
    kind: str = "ranks",
    steps: Sequence[float] | None = None,
    layout: str = "rows",
    ax=None,
    cmap: str = "viridis",
    title: str | None = None,
    legend: bool | None = None,
):
    """Permutation trace: how chosen weights move from sync to sync (Section 4).

    LaPerm never changes a vector's values, only where they sit.  This draws,
    for a few weights of one vector, their position after each recorded sync.

    Args:
        records: one array per recorded sync, in the row view
            ``(n_vectors, n)`` (or the variable's own shape with
            ``layout="variable"``; arrays that are not 2-D are always read
            as variables).  With ``kind="ranks"`` each is ``ranks(theta_t)``
            (what ``laperm.PermutationRecorder`` stores); with
            ``kind="positions"`` each is a position map
            ``permutation_from(theta0, theta_t)``.
        vector: row of the records (output unit) to trace.
        n_weights: how many weights to trace, evenly spread (ignored if
            ``weights`` is given).
        weights: which weights to trace.  ``kind="ranks"``: ranks of values
            in the sorted initial vector (0 = smallest initial value);
            ``kind="positions"``: positions in theta0.
        kind: ``"ranks"`` or ``"positions"`` (see ``records``).
        steps: x values of the records (e.g. optimizer steps); default the
            sync index 0, 1, 2, ...
        layout: ``"rows"`` or ``"variable"`` (see ``records``).
        ax: Axes to draw on.
        cmap: colormap over the traced weights (by initial value rank or
            position).
        title: Axes title.
        legend: show a legend; default when at most 10 weights are traced.

    Returns:
        The Axes, with one line per traced weight.
    """
    ax = _new_ax(ax)
    pos = positions(records, vector, kind, layout)
    n_records, n = pos.shape
    if weights is None:
        k = max(1, min(int(n_weights), n))
        weights = np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))
    weights = [int(i) for i in weights]
    x = np.arange(n_records) if steps is None else np.asarray(steps, dtype=np.float64)
    if len(x) != n_records:
        raise ValueError(f"{len(x)} steps for {n_records} records")
    colors = plt.get_cmap(cmap)(np.linspace(0.0, 1.0, len(weights)))
    what = "value rank" if kind == "ranks" else "initial position"
    for c, i in zip(colors, weights):
        ax.plot(x, pos[:, i], color=c, lw=1.2, marker="o", ms=3, label=f"{what} {i}")
    ax.set_xlabel("sync" if steps is None else "step")
    ax.set_ylabel("position in vector")
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_title(title if title is not None else f"permutation trace, vector {vector}")
    if legend or (legend is None and len(weights) <= 10):
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="x-small")
    return ax


def animate_reconnection(
    theta0: Any,
    records: Sequence[Any],
    image_shape: Sequence[int] = (28, 28),
    vector: int | Sequence[int] = 0,
    interval: int = 200,
    kind: str = "ranks",
    record_vectors: Sequence[int] | None = None,
    layout: str = "rows",
    steps: Sequence[float] | None = None,
    include_initial: bool = False,
    cmap: str = "RdBu_r",
    panel_size: float = 2.4,
    close: bool = True,
    ncols: int | None = None,
) -> animation.FuncAnimation:
    """Animate theta0's values moving to new positions, sync after sync.

    Frame ``t`` shows the chosen vector(s) as images holding the weights after
    recorded sync ``t``: the same values as theta0 (Section 4), reconnected.

    Args:
        theta0: the initial weights (e.g. F1's ``(784, 10)`` kernel).
        records: per-sync arrays as in :func:`plot_permutation_trace`: stable
            ranks (``kind="ranks"``, rebuilt with
            :func:`laperm.analysis.profiles.from_ranks`) or position maps
            (``kind="positions"``, :func:`laperm.analysis.profiles.apply_permutation`).
        image_shape: ``(height, width)`` of one vector as an image.
        vector: index (or indices) of the theta0 vector(s) to show.
        interval: milliseconds between frames.
        kind: ``"ranks"`` or ``"positions"``.
        record_vectors: the theta0 vector indices held by the records' rows,
            when only some vectors were recorded (``PermutationRecorder``'s
            ``vectors``); default: row ``j`` is vector ``j``.
        layout: ``"rows"`` or ``"variable"`` layout of the records.
        steps: optional step numbers of the records, shown in the title.
        include_initial: add theta0 itself as a first frame.
        cmap: diverging colormap (scale centred at 0, shared by all frames).
        panel_size: size of one panel in inches.
        close: close the figure (avoids a stray static image in notebooks;
            the animation still renders with :func:`to_jshtml` or ``save``).
        ncols: panels per row (default: all in one row).

    Returns:
        A ``FuncAnimation`` with ``len(records) + include_initial`` frames.
    """
    a = P.to_numpy(theta0)
    rows0 = P.weight_vectors(a)
    shape = _check_image_shape(rows0.shape[1], image_shape)
    chosen = [int(vector)] if np.ndim(vector) == 0 else [int(v) for v in vector]
    if record_vectors is None:
        where = {v: v for v in chosen}
    else:
        rv = [int(v) for v in record_vectors]
        missing = [v for v in chosen if v not in rv]
        if missing:
            raise ValueError(f"vectors {missing} are not in record_vectors {rv}")
        where = {v: rv.index(v) for v in chosen}
    sorted0 = np.sort(rows0, axis=1)
    frames = []
    if include_initial:
        frames.append(rows0[chosen])
    for t, rec in enumerate(records):
        rows = record_rows(rec, layout)
        frame = []
        for v in chosen:
            idx = np.asarray(rows[where[v]])
            if idx.shape != (rows0.shape[1],):
                raise ValueError(f"record {t}: row of length {idx.shape}, expected {rows0.shape[1]}")
            if kind == "ranks":
                frame.append(sorted0[v][idx])
            elif kind == "positions":
                moved = np.empty_like(rows0[v])
                moved[idx] = rows0[v]
                frame.append(moved)
            else:
                raise ValueError(f"kind must be 'ranks' or 'positions', got {kind!r}")
        frames.append(np.stack(frame))
    if not frames:
        raise ValueError("nothing to animate: records is empty")
    data = np.stack(frames).astype(np.float64)  # (T, n_chosen, length)
    labels = []
    if include_initial:
        labels.append("θ0")
    for t in range(len(records)):
        labels.append(f"sync {t}" if steps is None else f"step {steps[t]}")

    vmax = float(np.nanmax(np.abs(rows0[chosen]))) if rows0.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    ncols = max(1, min(ncols or len(chosen), len(chosen)))
    nrows = -(-len(chosen) // ncols)
    fig, grid = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(panel_size * ncols, (panel_size + 0.25) * nrows + 0.3))
    panels = list(grid.ravel())
    for unused in panels[len(chosen):]:
        unused.remove()
    images = []
    for panel, k in zip(panels, range(len(chosen))):
        images.append(panel.imshow(data[0, k].reshape(shape), cmap=cmap, vmin=-vmax,
                                   vmax=vmax, interpolation="nearest"))
        panel.set_xticks([])
        panel.set_yticks([])
        panel.grid(False)
        panel.set_title(f"unit {chosen[k]}", fontsize="small")
    heading = fig.suptitle(labels[0])

    def update(t):
        for k, im in enumerate(images):
            im.set_data(data[t, k].reshape(shape))
        heading.set_text(labels[t])
        return [*images, heading]

    anim = animation.FuncAnimation(fig, update, frames=data.shape[0], interval=interval,
                                   blit=False, repeat=True)
    if close:
        plt.close(fig)
    return anim


# ---------------------------------------------------------------------------
# Section 5: training curves
# ---------------------------------------------------------------------------


def _default_hue(df: pd.DataFrame) -> str | None:
    for col in ("run", "label"):
        if col in df.columns:
            return col
    return None


def plot_training_curves(
    history_df: pd.DataFrame,
    x: str = "epoch",
    y: str | Sequence[str] = ("val_accuracy",),
    hue: str | None = None,
    style: str | None = None,
    ax=None,
    errorbar: Any = "sd",
    title: str | None = None,
    **kwargs: Any,
):
    """Training curves of one or several runs, e.g. LaPerm vs Adam (Section 5).

    Accepts a *wide* frame (one column per metric: ``epoch``,
    ``val_accuracy``, ..., plus ``run`` or ``label``) or a *long* one
    (columns ``metric`` and ``value``).  Several rows with the same ``x`` and
    ``hue`` (e.g. seeds) are aggregated by seaborn with an error band.

    Args:
        history_df: the curves.
        x: column on the x axis.
        y: metric name(s) to draw.
        hue: column that tells runs apart; default ``run``, else ``label``,
            else the metric when several are drawn.
        style: line style column; default the metric when several metrics
            and a run column are drawn.
        ax: Axes to draw on.
        errorbar: seaborn ``errorbar`` for repeated rows (``"sd"``, ``("ci",
            95)``, ``None``).
        title: Axes title.
        **kwargs: passed to ``seaborn.lineplot``.

    Returns:
        The Axes.

    Raises:
        KeyError: if ``x`` or a metric is missing.
    """
    ax = _new_ax(ax)
    metrics = [y] if isinstance(y, str) else list(y)
    df = history_df
    if x not in df.columns:
        raise KeyError(f"column {x!r} not in the DataFrame ({list(df.columns)})")
    if all(m in df.columns for m in metrics):
        id_vars = [c for c in df.columns if c not in metrics and c != "metric"]
        long = df.melt(id_vars=id_vars, value_vars=metrics, var_name="metric",
                       value_name="value")
    elif {"metric", "value"} <= set(df.columns):
        long = df[df["metric"].isin(metrics)]
        missing = [m for m in metrics if m not in set(long["metric"])]
        if missing:
            raise KeyError(f"metrics {missing} not in the DataFrame's 'metric' column")
    else:
        missing = [m for m in metrics if m not in df.columns]
        raise KeyError(f"columns {missing} not in the DataFrame ({list(df.columns)})")
    if hue is None:
        hue = _default_hue(long)
        if hue is None and len(metrics) > 1:
            hue = "metric"
    if style is None and len(metrics) > 1 and hue != "metric":
        style = "metric"
    sns.lineplot(data=long, x=x, y="value", hue=hue, style=style, errorbar=errorbar,
                 ax=ax, **kwargs)
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    ax.set_xlabel(x)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_sawtooth(
    history_df_steps: pd.DataFrame,
    x: str = "step",
    y: str = "accuracy",
    sync_steps: Sequence[float] | None = None,
    sync_period: int | None = None,
    sync_column: str | None = None,
    hue: str | None = None,
    ax=None,
    marker: str | None = ".",
    title: str | None = None,
):
    """Per-step accuracy or loss with the syncs marked: the saw-tooth (5.3).

    Between syncs the inner optimizer moves the weights freely; at a sync
    they are snapped back to a permutation of theta_0, and the metric jumps.
    Measured every step (or every few steps) this gives a saw-tooth.

    Syncs come from, in this order: ``sync_steps``; multiples of
    ``sync_period`` within the x range; a boolean column ``sync_column``
    (default ``"synced"`` when the frame has it).

    Args:
        history_df_steps: one row per measurement: ``x``, ``y`` and an
            optional ``run``/``label`` column.
        x: the step column.
        y: the metric column.
        sync_steps: x positions of the syncs.
        sync_period: LaPerm's k (syncs after steps k, 2k, ...).
        sync_column: boolean column marking rows measured right after a sync.
        hue: column telling runs apart (default ``run``/``label`` if present).
        ax: Axes to draw on.
        marker: marker of the measurements.
        title: Axes title.

    Returns:
        The Axes: one line per run in ``ax.lines`` and, if syncs are known,
        one ``LineCollection`` of vertical sync lines in ``ax.collections``.
    """
    ax = _new_ax(ax)
    df = history_df_steps
    for col in (x, y):
        if col not in df.columns:
            raise KeyError(f"column {col!r} not in the DataFrame ({list(df.columns)})")
    hue = hue if hue is not None else _default_hue(df)
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=False))
    for name, g in groups:
        g = g.sort_values(x)
        ax.plot(g[x].to_numpy(), g[y].to_numpy(), marker=marker, ms=3, lw=1.0,
                label=None if name is None else str(name))
    xs = None
    label = "sync"
    if sync_steps is not None:
        xs = np.asarray(sync_steps, dtype=np.float64)
    elif sync_period is not None:
        k = int(sync_period)
        lo, hi = float(df[x].min()), float(df[x].max())
        first = max(k, int(np.ceil(lo / k)) * k)
        xs = np.arange(first, hi + 1e-9, k, dtype=np.float64)
        label = f"sync (k = {k})"
    else:
        col = sync_column if sync_column is not None else ("synced" if "synced" in df.columns else None)
        if col is not None:
            xs = np.unique(df.loc[df[col].astype(bool), x].to_numpy(dtype=np.float64))
    if xs is not None and len(xs):
        ax.vlines(xs, 0, 1, transform=ax.get_xaxis_transform(), colors="0.45",
                  linestyles=":", linewidths=0.9, label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title is not None:
        ax.set_title(title)
    if hue is not None or (xs is not None and len(xs)):
        ax.legend(loc="best")
    return ax


#: The three evaluations of a LaPerm epoch of a model with BatchNorm (Section 5.2).
THREE_EVALUATIONS = {
    "test_accuracy": ("-", "synchronised, BatchNorm re-estimated"),
    "test_accuracy_stale_bn": ("--", "synchronised, stale BatchNorm statistics"),
    "test_accuracy_unsynced": (":", "unsynchronised (the weights between syncs)"),
}


def plot_three_evaluations(histories: dict[str, pd.DataFrame], width: float = 7.2):
    """Test accuracy per epoch, evaluated three ways, one panel per run (Section 5.2).

    A sync moves every kernel weight but leaves BatchNorm's moving statistics
    describing the weights before it; each LaPerm epoch of a BatchNorm model
    is therefore evaluated on synchronised weights with re-estimated
    statistics (the number this project reports), with the stale statistics,
    and unsynchronised.

    Args:
        histories: ``{title: history}``; histories without the three
            evaluations (:func:`has_three_evaluations`) are skipped.
        width: figure width in inches.

    Returns:
        The Figure, or None when no history has the three evaluations.
    """
    shown = {t: h for t, h in histories.items() if has_three_evaluations(h)}
    if not shown:
        return None

    def draw(ax, h):
        for column, (ls, label) in THREE_EVALUATIONS.items():
            if column in h and h[column].notna().any():
                ax.plot(h["epoch"], h[column], ls, label=label)

    return _test_accuracy_panels(shown, draw, width)


def _test_accuracy_panels(shown: dict, draw, width: float, legend_columns: int = 1):
    """One panel of test accuracy per epoch for each ``{title: data}`` of ``shown``
    (``draw(ax, data)`` plots the lines), sharing the y axis, one legend below."""
    fig, axes = plt.subplots(1, len(shown), figsize=(width, 3.3), squeeze=False, sharey=True)
    for ax, (title, data) in zip(axes[0], shown.items()):
        draw(ax, data)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    axes[0][0].set_ylabel("test accuracy")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
               ncol=legend_columns)
    return fig


def plot_precision_over_training(tables: dict[str, pd.DataFrame], width: float = 7.2):
    """Test accuracy per epoch of one seed at float32 and at mixed_bfloat16, one panel
    per run pair (:func:`laperm.analysis.speed.precision_over_training`).

    Args:
        tables: ``{title: table}``; None tables are skipped.
        width: figure width in inches.

    Returns:
        The Figure, or None when there is no table.
    """
    shown = {t: v for t, v in tables.items() if v is not None and len(v)}
    if not shown:
        return None

    def draw(ax, table):
        for column, ls in (("float32", "-"), ("mixed_bfloat16", "--")):
            kernels = table.attrs.get(f"{column}_kernels")
            ax.plot(table["epoch"], table[column], ls,
                    label=column + (f" ({kernels} kernels)" if kernels else ""))

    return _test_accuracy_panels(shown, draw, width, legend_columns=2)


def plot_speedups(table: pd.DataFrame, target: float | None = None, width: float = 7.2,
                  over: str = "x default"):
    """Training speed-up of each way over a reference way, one group of bars per model.

    Args:
        table: :func:`laperm.analysis.speed.speed_table` (columns ``model``, ``way`` and
            the speed-up column ``over``).
        target: draw a dashed line at this speed-up (e.g. the 2x target).
        width: figure width in inches.
        over: the speed-up column: ``"x default"`` (today's default path) or
            ``"x previous release"``.

    Returns:
        The Figure.
    """
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(width, 3.4))
    sns.barplot(data=table, x="model", y=over, hue="way", ax=ax)
    ax.axhline(1.0, color="0.3", lw=0.8)
    if target is not None:
        ax.axhline(target, color="C3", ls="--", lw=1, label=f"target {target:g}x")
    ax.set_ylabel("speed-up over the\n" + ("default path" if over == "x default"
                                            else "previous release"))
    ax.set_xlabel("")
    fig.tight_layout()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=3, frameon=False,
              fontsize="small")
    return fig


def plot_run_curves(
    histories: dict[str, pd.DataFrame],
    paper_lines: dict[str, float] | None = None,
    suptitle: str | None = None,
):
    """Validation (left) and test (right) accuracy per epoch of several runs (Section 5).

    Args:
        histories: ``{label: history DataFrame}`` with ``epoch``,
            ``val_accuracy`` and ``test_accuracy`` columns; several seeds of a
            label may be concatenated (mean, band = standard deviation).
        paper_lines: ``{label: accuracy}`` drawn dashed on the test panel.
        suptitle: the figure's title.

    Returns:
        The Figure.
    """
    hist = pd.concat([h.assign(run=label) for label, h in histories.items() if h is not None],
                     ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.6), sharey=True)
    plot_training_curves(hist, y="val_accuracy", hue="run", ax=axes[0], marker="o",
                         title="validation accuracy\n(held out of the training set)")
    plot_training_curves(hist, y="test_accuracy", hue="run", ax=axes[1], marker="o",
                         title="test accuracy")
    for i, (label, value) in enumerate((paper_lines or {}).items()):
        axes[1].axhline(value, ls="--", lw=1, color=f"C{len(histories) + i}", label=label)
    epochs = sorted(hist["epoch"].unique())
    for ax in axes:
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel("accuracy")
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    handles, labels = axes[1].get_legend_handles_labels()
    if axes[1].get_legend() is not None:
        axes[1].get_legend().remove()
    if suptitle:
        import textwrap

        fig.suptitle(textwrap.fill(suptitle, 80), fontsize="medium")
    fig.tight_layout()
    # below the panels, so long run labels never widen the figure
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=1 if max((len(t) for t in labels), default=0) > 40 else 2, frameon=False)
    return fig


def plot_convergence(table: pd.DataFrame, width: float = 7.2):
    """Epochs LaPerm and Adam need to reach 90/95/99 % of their final test accuracy.

    One panel per fraction, one row per pair of :func:`laperm.analysis.comparisons.convergence_table`
    (labelled with its device, variant and the epochs compared), LaPerm and Adam
    side by side.  Returns the figure, or None when the table is empty.
    """
    if table is None or table.empty:
        return None
    fractions = [c.removeprefix("LaPerm ") for c in table.columns
                 if c.startswith("LaPerm ") and c.endswith("%")]
    labels = [f"{e} ({d}{'' if v == '–' else ', ' + v}; {n} ep.)" for e, d, v, n in
              zip(table["experiment"], table["device"], table["variant"], table["epochs"])]
    long = pd.concat([
        pd.DataFrame({"pair": labels, "optimizer": side, "fraction": f,
                      "epochs": table[f"{side} {f}"]})
        for side in ("LaPerm", "Adam") for f in fractions])
    fig, axes = plt.subplots(1, len(fractions), figsize=(width, 0.35 * len(table) + 1.6),
                             sharey=True)
    for ax, f in zip(np.atleast_1d(axes), fractions):
        sns.barplot(data=long[long["fraction"] == f], y="pair", x="epochs", hue="optimizer",
                    hue_order=["LaPerm", "Adam"], ax=ax, legend=ax is np.atleast_1d(axes)[-1])
        ax.set_title(f"to {f} of final", fontsize=10)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_section_times(table: pd.DataFrame, ax=None):
    """Each executed section's wall time (a :func:`laperm.book.status.status_table`), as bars.

    Returns:
        The Axes, or None when no section was executed.
    """
    done = table[table["state"] == "executed"]
    if done.empty:
        return None
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(done) + 1))
    seconds = done["wall time (s)"].astype(float)
    ax.barh(done["section"], seconds, color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("wall time of the last execution, setup to finish (s)")
    ax.set_title(f"execution time per section (total {seconds.sum() / 60:.1f} min)")
    return ax


def plot_checkpoint_scores(results: pd.DataFrame):
    """Published against measured accuracy of the authors' files, ±2 standard errors (Section 6).

    Args:
        results: :func:`laperm.analysis.checkpoints.score`'s table.

    Returns:
        The Figure (accuracy on the left, the difference on the right), or None without rows.
    """
    if results.empty:
        return None
    order = results.iloc[::-1].reset_index(drop=True)  # first model on top
    ypos = np.arange(len(order))
    colors = np.where(order["dataset/test set"].str.startswith("MNIST"), "C0", "C1")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.4, 0.5 * len(order) + 1.8), sharey=True)
    ax1.scatter(100 * order["published"], ypos, marker="D", facecolors="none",
                edgecolors="k", s=45, label="published (paper)", zorder=3)
    ax1.errorbar(100 * order["measured"], ypos, xerr=200 * order["std. error"],
                 fmt="none", ecolor="0.4", capsize=3, zorder=2)
    for colour, dataset in (("C0", "MNIST"), ("C1", "CIFAR-10")):
        mine = colors == colour
        if mine.any():
            ax1.scatter(100 * order["measured"][mine], ypos[mine], color=colour, s=35,
                        label=f"measured here, {dataset} (±2 SE)", zorder=4)
    ax1.set_yticks(ypos, order["model"])
    ax1.set_xlabel("test accuracy (%)")
    ax1.set_title("accuracy")
    ax1.legend(loc="lower left", fontsize="x-small")
    diff = 100 * order["difference"]
    ax2.errorbar(diff, ypos, xerr=200 * order["std. error"], fmt="none", ecolor="0.4",
                 capsize=3)
    ax2.scatter(diff, ypos, c=colors, s=35, zorder=3)
    ax2.axvline(0, color="k", lw=1)
    ax2.set_xlabel("measured - published (points), ±2 standard errors")
    ax2.set_title("difference (blue: MNIST, orange: CIFAR-10)")
    fig.suptitle("authors' checkpoints: published vs measured")
    fig.tight_layout()
    return fig
