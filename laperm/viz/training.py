"""Training curves: LaPerm against Adam, the syncs' saw-tooth, three evaluations (paper, Section 5).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from laperm.analysis.records import has_three_evaluations
from laperm.viz.style import new_ax

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
    ax = new_ax(ax)
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
    ax = new_ax(ax)
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
    if hue is not None or (xs is not None and len(xs)):  # beside the data, never on it
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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


#: The most panels a row of small multiples holds (a row is the page's width).
PANEL_COLUMNS = 3


def _test_accuracy_panels(shown: dict, draw, width: float, legend_columns: int = 1):
    """One panel of test accuracy per epoch for each ``{title: data}`` of ``shown``
    (``draw(ax, data)`` plots the lines): small multiples, at most
    :data:`PANEL_COLUMNS` a row, sharing the y axis, titles wrapped, one legend below."""
    import textwrap

    ncols = min(len(shown), PANEL_COLUMNS)
    nrows = -(-len(shown) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 2.9 * nrows + 0.4), squeeze=False,
                             sharey=True)
    flat = list(axes.ravel())
    for extra in flat[len(shown):]:
        fig.delaxes(extra)
    for ax, (title, data) in zip(flat, shown.items()):
        draw(ax, data)
        ax.set_title(textwrap.fill(title, 26), fontsize="small")  # 3 panels a row: no overlap
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(5, integer=True))
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    for row in axes:
        row[0].set_ylabel("test accuracy")
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


#: The dashes of the paper's lines in :func:`plot_run_curves` (grey, apart from the runs' colours).
PAPER_DASHES = ("--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))


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
    for i, (label, value) in enumerate((paper_lines or {}).items()):  # grey, told apart by dashes
        axes[1].axhline(value, ls=PAPER_DASHES[i % len(PAPER_DASHES)], lw=1.1, color="0.25",
                        label=label)
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
