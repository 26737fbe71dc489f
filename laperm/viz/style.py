"""The project's plotting style and the helpers every figure shares.

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


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


def new_ax(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def panel_grid(n: int, ncols: int, axes, figsize, sharey: bool = False):
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
