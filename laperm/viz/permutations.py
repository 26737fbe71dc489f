"""Vectors as images, permutation traces and the reconnection animation (paper, Section 4).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from laperm.analysis import profiles as P
from laperm.analysis.permutations import positions, record_rows, settling_table
from laperm.data import augmented_images, describe_augmentation
from laperm.viz.style import new_ax, panel_grid

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
    fig, flat = panel_grid(n, ncols, axes, lambda nr, nc: (
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
    ax = new_ax(ax)
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
    ax = new_ax(ax)
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
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)  # off the data
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
    ax = new_ax(ax)
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


def plot_one_sync(theta0: Any, w: Any, synced: Any, cmap: str = "viridis", width: float = 7.4):
    """One weight vector through one LaPerm cycle, as bars coloured by initial value (Section 4).

    Three panels: ``theta0``, the weights after the inner optimizer's k steps, and the
    synchronised weights.  A bar's colour is the identity of the initial value it
    holds (dark: the smallest value of ``theta0``, yellow: the largest), so the third
    panel shows the first panel's colours in new places: a reconnection.

    Args:
        theta0: the initial vector.
        w: the vector after k inner steps (coloured as ``theta0``: same positions).
        synced: the vector after the sync, a permutation of ``theta0``.
        cmap: the colour map.
        width: the figure's width (inches).

    Returns:
        The Figure.
    """
    theta0, w, synced = (np.asarray(P.to_numpy(a)) for a in (theta0, w, synced))
    n = len(theta0)
    value_rank = np.argsort(np.argsort(theta0))  # colour = identity of an initial value
    colours = plt.get_cmap(cmap)
    colour_of = lambda v: colours(value_rank[np.argmin(np.abs(theta0 - v))] / (n - 1))  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(width, 2.8), sharey=True)
    panels = [
        (theta0, [colours(r / (n - 1)) for r in value_rank], r"$\theta_0$: initial weights"),
        (w, [colours(r / (n - 1)) for r in value_rank], "after k inner steps"),
        (synced, [colour_of(v) for v in synced],
         "after the sync:\n" r"$\theta_0$'s values, new places"),
    ]
    for ax, (values, bar_colours, title) in zip(axes, panels):
        ax.bar(np.arange(n), values, color=bar_colours, edgecolor="black", linewidth=0.4)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4, integer=True))
    axes[0].set_ylabel("weight value")
    fig.supxlabel("position in the weight vector", fontsize="medium")  # once, never overlapping
    fig.tight_layout()
    return fig
