"""Section 5 sweeps: accuracy against the sync period k (5.3) and the pruned share p (5.4),
the saw-tooth of one run (5.3), and the connections per unit a mask fixes (5.5).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).
Tables are :func:`laperm.analysis.comparisons.results_table` of a page's runs.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from laperm.paper import PAPER_ACCURACY
from laperm.viz.training import plot_sawtooth

ACC = "test acc at best val"

#: The paper's ResNet50 rows of Section 5.4: ``{p (%): experiment}``.
PAPER_PRUNED = {0: "resnet50", 30: "resnet50_p30", 50: "resnet50_p50", 70: "resnet50_p70"}


def _laperm_and_adam(table: pd.DataFrame, by: str):
    lap = table[table["optimizer"] != "Adam"].sort_values(by)
    adam = table[table["optimizer"] == "Adam"]
    return lap, (adam.iloc[0] if len(adam) else None)


def plot_sync_period_sweep(table: pd.DataFrame, title: str = "", ax=None):
    """Test accuracy against the sync period k, each point labelled with its syncs (5.3).

    LaPerm's test accuracy at the best validation epoch and at the last epoch
    on a log k axis, and the Adam run's as a horizontal line.

    Returns:
        The Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    lap, adam = _laperm_and_adam(table, "k")
    ax.plot(lap["k"], lap[ACC], "o-", label="LaPerm: test acc at best val epoch")
    ax.plot(lap["k"], lap["final test acc"], "s--", label="LaPerm: final test acc")
    if adam is not None:
        ax.axhline(adam[ACC], color="C3", ls=":", label="Adam (test acc at best val)")
    for k, syncs, acc in zip(lap["k"], lap["syncs"], lap[ACC]):
        ax.annotate(f"{syncs:.0f} syncs", (k, acc), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize="x-small")
    ax.set_xscale("log")
    ax.set_xticks(list(lap["k"]), [f"{k:.0f}" for k in lap["k"]])
    ax.minorticks_off()
    ax.set_xlabel("sync period k (inner steps between syncs)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)  # off the data
    return ax


def plot_pruning_sweep(table: pd.DataFrame, title: str = ""):
    """Test accuracy against p, the share of kernel weights pruned at initialisation (5.4).

    Left: our LaPerm runs (best-validation and final test accuracy) and the
    dense Adam run; right: the paper's ResNet50 on CIFAR-10 (its results table).

    Returns:
        The Figure.
    """
    import textwrap

    from matplotlib.ticker import PercentFormatter

    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.9))
    lap, adam = _laperm_and_adam(table, "p")
    axes[0].plot(100 * lap["p"], lap[ACC], "o-", ms=7, label="LaPerm: test acc at best val")
    axes[0].plot(100 * lap["p"], lap["final test acc"], "s--", ms=5,
                 label="LaPerm: final test acc")
    if adam is not None:
        axes[0].axhline(adam[ACC], color="C3", ls=":", label="Adam, dense")
    if len(lap) == 1:  # one run: say so on the point, so that it is not read as a curve
        axes[0].annotate(f"one run, p = {100 * lap['p'].iloc[0]:.0f}%",
                         (100 * lap["p"].iloc[0], lap[ACC].iloc[0]), xytext=(0, 10),
                         textcoords="offset points", ha="center", fontsize="x-small")
    axes[0].set_title(textwrap.fill(title or "ours", 40), fontsize="small")
    axes[1].plot(list(PAPER_PRUNED), [PAPER_ACCURACY[n] for n in PAPER_PRUNED.values()], "o-",
                 color="0.3", label="paper: ResNet50, CIFAR-10, 200 epochs")
    axes[1].set_title("paper: ResNet50 on CIFAR-10\n(the authors' results table)",
                      fontsize="small")
    for ax in axes:
        ax.set_xlim(-5, 80)  # the same p axis on both sides
        ax.set_xlabel("p: kernel weights pruned (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.margins(y=0.15)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False,
                  fontsize="x-small")
    axes[0].set_ylabel("test accuracy")
    fig.tight_layout()
    return fig


def plot_sawtooth_zoom(steps: pd.DataFrame, sync_period: int, model: str = "F2"):
    """The probe accuracy after every step (top) and its last four sync periods (bottom), 5.3.

    Args:
        steps: rows ``step, accuracy, weights`` (inner or synchronised),
            :class:`laperm.method.callbacks.SyncProbe`'s ``rows``.
        sync_period: k.
        model: named in the title.

    Returns:
        The Figure.
    """
    k = sync_period
    fig, axes = plt.subplots(2, 1, figsize=(7.2, 6))
    plot_sawtooth(steps, x="step", y="accuracy", sync_period=k, hue="weights", ax=axes[0],
                  marker=None, title=f"probe accuracy after every step ({model}, k = {k})")
    periods = zoom_periods(int(steps["step"].max()), k)
    late = steps[steps["step"] > steps["step"].max() - periods * k]
    plot_sawtooth(late, x="step", y="accuracy", sync_period=k, hue="weights", ax=axes[1],
                  title=f"zoom on the last {periods} sync period{'s' if periods > 1 else ''}")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:  # one legend, below the panels, never on the curves
        ax.get_legend().remove()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               frameon=False)
    return fig


def zoom_periods(steps: int, sync_period: int, most: int = 4) -> int:
    """How many sync periods the saw-tooth's zoom shows: at most ``most``, and at most half
    of those the run has (so that the zoom never repeats the whole plot), at least one."""
    return max(1, min(most, (steps // sync_period) // 2))


def plot_connection_counts(counts: pd.DataFrame, ax=None):
    """Connections per output unit, one line per mask source (5.5).

    Args:
        counts: :func:`laperm.analysis.weights.output_connection_counts`
            (``source, mask, digit, connections``); the paper's Bernoulli mask
            solid, the per-unit control dashed.

    Returns:
        The Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    sns.lineplot(data=counts, x="digit", y="connections", hue="source", style="mask",
                 markers=True, dashes={"bernoulli": "", "per_unit": (4, 2)}, ax=ax)
    ax.set_xticks(range(10))
    ax.set_title("F2 output layer: connections per digit unit (fixed by the mask, kept by LaPerm)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    ax.figure.tight_layout()
    return ax
