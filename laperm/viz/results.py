"""Figures of the Results and status pages: convergence speed, section times, checkpoint scores.

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns

from laperm.analysis.comparisons import paper_row_labels, paper_row_runs
from laperm.paper import PAPER_ACCURACY


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
    diff = 100 * order["difference"]
    ax2.errorbar(diff, ypos, xerr=200 * order["std. error"], fmt="none", ecolor="0.4",
                 capsize=3)
    ax2.scatter(diff, ypos, c=colors, s=35, zorder=3)
    ax2.axvline(0, color="k", lw=1)
    ax2.set_xlabel("measured - published (points), ±2 standard errors")
    ax2.set_title("difference (blue: MNIST, orange: CIFAR-10)")
    fig.suptitle("authors' checkpoints: published vs measured")
    # the legend under both panels, never over a point
    fig.legend(*ax1.get_legend_handles_labels(), loc="lower center", ncol=3,
               fontsize="x-small", frameon=False)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig


#: The colour of each optimizer's dots in :func:`plot_paper_rows`.
OPTIMIZER_COLOURS = {"laperm": "C0", "adam": "C1"}


def plot_paper_rows(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val",
                    width: float = 7.2):
    """Ours against the paper, one line per row of its table (Table 1 of Qiu & Suda, 2020).

    The star is the paper's number; each dot one run with the paper's input
    (:func:`laperm.analysis.comparisons.paper_row_runs`), LaPerm above the line and
    Adam below it; filled dots are runs at the paper's settings, hollow ones
    reduced runs.  Each row's name says whether it has a run at the paper's scale
    (:func:`laperm.analysis.comparisons.paper_row_labels`).

    Args:
        records: :func:`laperm.analysis.records.load_sources` rows.
        metric: the accuracy column drawn.
        width: the figure's width (inches).

    Returns:
        The Axes.
    """
    names = list(PAPER_ACCURACY)
    y = {name: i for i, name in enumerate(names)}
    _, ax = plt.subplots(figsize=(width, 0.42 * len(names) + 1.3))
    ax.scatter([PAPER_ACCURACY[n] for n in names], [y[n] for n in names], marker="*", s=170,
               color="black", label="paper", zorder=4)
    shown = paper_row_runs(records, metric)
    groups = (shown.groupby(["optimizer", shown["scale"] == "paper scale"]) if len(shown)
              else [])
    for (optimizer, paper_scale), g in groups:
        offset = -0.17 if optimizer == "laperm" else 0.17
        name = "LaPerm" if optimizer == "laperm" else "Adam"
        colour = OPTIMIZER_COLOURS[optimizer]
        ax.scatter(g[metric], [y[n] + offset for n in g["experiment"]],
                   s=46 if paper_scale else 34, color=colour if paper_scale else "none",
                   edgecolors=colour, linewidths=1.4, zorder=3,
                   label=f"{name}, {'paper scale' if paper_scale else 'reduced'}")
    ax.set_yticks(range(len(names)), paper_row_labels(shown))
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy")
    ax.xaxis.set_major_formatter(mticker.PercentFormatter(1.0))
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.16), ncol=3, frameon=False)
    return ax
