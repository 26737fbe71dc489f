"""Locations versus values: re-permuting θ0 into the order of θt (paper, Section 3).

Part of :mod:`laperm.viz` (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020).  The runs
it draws come from :func:`laperm.analysis.locations.run`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from laperm.paper import model_label

from laperm.viz.training import plot_training_curves


def plot_repermutation(runs: dict):
    """Per model: test accuracy while Adam trains, and how far θt is from θ0.

    Left, the accuracy of θt and of θ0 re-permuted into θt's order at each
    checkpoint, with a random permutation of θ0 dotted; right, the rank
    correlation with θ0 (order) and ``||θt − θ0|| / ||θ0||`` (values).  Steps
    on a symmetric-log axis.

    Args:
        runs: ``{model name: laperm.analysis.locations.run(...)}``.

    Returns:
        The Figure, one row per model.
    """
    fig, axes = plt.subplots(len(runs), 2, figsize=(7.4, 4.1 * len(runs)), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1.5, 1]))
    for (name, r), (ax1, ax2) in zip(runs.items(), axes):
        curve = r.curve
        total = curve["step"].max()
        acc_cols = [c for c in curve.columns if c.startswith(("theta_t", "repermuted"))]
        long = curve.melt(id_vars=["step"], value_vars=acc_cols, var_name="network",
                          value_name="test accuracy")
        plot_training_curves(long, x="step", y="test accuracy", hue="network", ax=ax1,
                             marker="o", errorbar=None)
        ax1.axhline(r.random_acc, color="0.5", ls=":",
                    label="random permutation of θ0")
        ax1.set_title(f"{model_label(name)}: test accuracy while Adam trains", fontsize="small")
        ax1.set_ylim(0, 1)
        ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
        ax2.plot(curve["step"], curve["rank correlation with theta_0"], marker="o", ms=3,
                 label="rank correlation with θ0 (order)")
        ax2.plot(curve["step"], curve["relative value change"], marker="s", ms=3,
                 label="||θt − θ0|| / ||θ0|| (values)")
        ax2.set_xlabel("step")
        ax2.set_title(f"{model_label(name)}: how far θt is from θ0 (kernels)", fontsize="small")
        ax2.set_ylim(0, None)
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
        for ax in (ax1, ax2):
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(0, total * 1.3)
    fig.tight_layout()
    return fig
