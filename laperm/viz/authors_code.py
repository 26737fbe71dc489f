"""Figures of the cross-check with the authors' code (the book's page 4.1).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 4
and the F1/F2 experiments of Section 5.5).  The tables they draw come from
:mod:`laperm.analysis.authors_code`.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from laperm.analysis.authors_code import last_sync_agreement
from laperm.paper import PAPER_ACCURACY


def plot_position_agreement(training: pd.DataFrame):
    """The share of weight positions where the authors' loop and ours agree after the last sync.

    One bar per run (green: the matching loss), with a black tick at the share
    two unrelated permutations of theta_0 would have in common by chance.

    Args:
        training: :func:`laperm.analysis.authors_code.label_training`'s table.

    Returns:
        The Axes.
    """
    synced = training[training["sync"].notna()]
    last = last_sync_agreement(training)
    _, ax = plt.subplots(figsize=(7, 0.42 * len(last) + 1.6))
    y = range(len(last))
    ax.barh(y, last["agree_fraction"],
            color=["C2" if "matching" in r else "C0" for r in last.index])
    ax.scatter(last["chance_fraction"], y, marker="|", s=300, color="black", zorder=3,
               label="two unrelated permutations of θ₀")
    for i, value in enumerate(last["agree_fraction"]):
        inside = value > 0.25  # the label inside a long bar, beside a short one
        ax.annotate(f"{value:.2%}", (value, i), xytext=(-4 if inside else 4, 0),
                    textcoords="offset points", ha="right" if inside else "left",
                    va="center", fontsize="small", color="white" if inside else "black")
    ax.set_yticks(list(y), last.index)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"positions that agree after sync {int(synced['sync'].max())}")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.32 - 0.3 / len(last)), fontsize="small",
              frameon=False)
    ax.set_title("the authors' loop and ours: same weights in the same places?")
    return ax


def plot_seed_accuracies(runs: pd.DataFrame):
    """Each seed's best test accuracy, one panel per model, the paper's number dashed.

    Args:
        runs: :func:`laperm.analysis.authors_code.seed_runs`'s table (columns
            ``model``, ``side``, ``best_test_accuracy``).

    Returns:
        The Figure.
    """
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4), sharey=False)
    for ax, (model, g) in zip(axes, runs.groupby("model")):
        paper_value = PAPER_ACCURACY[model.lower()]
        sns.stripplot(data=g, x="side", y="best_test_accuracy", ax=ax, size=7, jitter=0.08,
                      hue="side", legend=False)
        ax.axhline(paper_value, color="black", ls="--", lw=1)
        ax.annotate("paper", (-0.4, paper_value), xytext=(0, 2), textcoords="offset points",
                    va="bottom", fontsize="small")
        low, high = ax.get_ylim()
        ax.set_ylim(low, max(high, paper_value + 0.1 * (paper_value - low)))
        ax.set_title(model)
        ax.set_xlabel("")
        ax.set_xticks(ax.get_xticks(), [textwrap.fill(t.get_text(), 14)
                                        for t in ax.get_xticklabels()], fontsize="small")
        ax.set_ylabel("best test accuracy" if model == "F1" else "")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    fig.suptitle("each dot one seed")
    fig.tight_layout()
    return fig
