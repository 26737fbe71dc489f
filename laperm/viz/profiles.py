"""Weight profiles: sorted weight vectors collapsing onto one curve (paper, Section 2).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection

from laperm.analysis import profiles as P
from laperm.viz.style import new_ax, panel_grid

# ---------------------------------------------------------------------------
# Section 2: weight profiles
# ---------------------------------------------------------------------------


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
    ax = new_ax(ax)
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
    title: str | None = None,
    **kwargs: Any,
):
    """One weight-profile panel per kernel of a model (Section 2).

    Small multiples: every panel has the normalised rank on x; on a new figure only the
    panels of the first column name the y axis and only the lowest panel of each column
    names the x axis, and the layout leaves room for the title (nothing overlaps).

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
        title: the figure's title (a new figure only).
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
    fig, flat = panel_grid(n, ncols, axes, lambda nr, nc: (panel_size[0] * nc, panel_size[1] * nr),
                        sharey=sharey)
    columns = max(1, min(ncols, n))
    for j, (panel, i) in enumerate(zip(flat, keep)):
        name, arr = items[i]
        plot_weight_profiles(
            arr, ax=panel, max_vectors=max_vectors, max_points=max_points,
            title=f"{name}\n{tuple(arr.shape)}",
            baseline=None if base is None else base[i][1],
            legend=False, **kwargs,
        )
        panel.set_xlabel("normalised rank")
        if axes is None:  # small multiples: the outer panels name the axes
            if j % columns:
                panel.set_ylabel("")
            if j + columns < n:
                panel.set_xlabel("")
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
                       bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7, "lw": 0})
    if axes is None:
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_profiles_before_after(model: Any, theta0: Any, title: str | None = None,
                               panel_size=(7.4 / 3, 2.6), **kwargs: Any):
    """The kernels' profiles at θ0 (top row) and after training (bottom row) (Section 2).

    The bottom row also shows θ0's mean profile dashed and, in each panel's box,
    the scores at θ0 (:func:`plot_profile_grid` with ``baseline=theta0``).

    Args:
        model: the trained weights (a Keras model, mapping or list of arrays).
        theta0: its initial weights, matched by position.
        title: the figure's title.
        panel_size: ``(width, height)`` of one panel in inches.
        **kwargs: passed to :func:`plot_profile_grid`.

    Returns:
        The Figure, one column per kernel.
    """
    shapes = [a.shape for _, a in P.named_weights(theta0) if a.ndim >= 2]
    fig, axes = plt.subplots(2, len(shapes), squeeze=False,
                             figsize=(panel_size[0] * len(shapes), panel_size[1] * 2))
    plot_profile_grid(theta0, axes=axes[0], **kwargs)
    plot_profile_grid(model, baseline=theta0, axes=axes[1], **kwargs)
    for ax, shape in zip(axes[0], shapes):
        ax.set_title(f"θ0: {'dense' if len(shape) == 2 else 'conv'} {'x'.join(map(str, shape))}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_profiles_side_by_side(theta0: Any, theta: Any, width: float = 7.2,
                               height: float = 3.2):
    """One layer's sorted vectors at θ0 (left) and after training (right) (Sections 2, 4).

    The right panel also draws θ0's mean profile (``baseline``).  After LaPerm both panels
    are the same curves: a sync gives every vector back its initial values.

    Args:
        theta0: the layer's initial kernel, e.g. F1's ``(784, 10)``.
        theta: the kernel after training, same shape.
        width, height: the figure's size (inches).

    Returns:
        The Figure, two Axes.
    """
    n, length = P.weight_vectors(P.to_numpy(theta0)).shape
    fig, axes = plt.subplots(1, 2, figsize=(width, height))
    plot_weight_profiles(theta0, ax=axes[0], title=f"θ0: {n} sorted vectors of {length}")
    plot_weight_profiles(theta, ax=axes[1], baseline=theta0,
                         title="after LaPerm: the same sorted vectors")
    fig.tight_layout()
    return fig
