"""Figures for the Train-by-Reconnect companion (matplotlib / seaborn).

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020.

* :func:`plot_weight_profiles`, :func:`plot_profile_grid`,
  :func:`plot_profiles_side_by_side`: sorted weight
  vectors collapsing onto one curve, the weight profile (Section 2).
* :func:`plot_vectors_as_images`: the ten 784-weight vectors of an MNIST
  linear model (F1) as 28x28 images (Sections 4, 5.5).
* :func:`plot_permutation_trace`, :func:`animate_reconnection`: where weights
  travel from sync to sync (Section 4; :func:`laperm.book.to_jshtml` plays an animation).
* :func:`plot_training_curves`: LaPerm vs Adam curves of one or several runs
  (Section 5).
* :func:`plot_sawtooth`: per-step accuracy or loss with the syncs marked, the
  saw-tooth of Section 5.3.
* :func:`plot_sync_period_sweep`, :func:`plot_pruning_sweep`, :func:`plot_sawtooth_zoom`,
  :func:`plot_connection_counts`: the sweeps of Sections 5.3-5.5 (:mod:`~laperm.viz.sweeps`).

* :func:`plot_repermutation`: θ0 re-permuted into θt's order while Adam trains
  (Section 3, :mod:`~laperm.viz.locations`).
* :func:`plot_position_agreement`, :func:`plot_seed_accuracies`: the authors' code
  beside ours (page 4.1, :mod:`~laperm.viz.authors_code`).

One module per part of the paper: :mod:`~laperm.viz.profiles`,
:mod:`~laperm.viz.permutations`, :mod:`~laperm.viz.training`, :mod:`~laperm.viz.results`;
the style in :mod:`~laperm.viz.style`. Every function accepts an optional ``ax`` (``axes`` for multi-panel figures)
and returns the Axes, Figure or Animation it drew; none calls ``plt.show()``.
Weight arguments follow :mod:`laperm.analysis.profiles` (NumPy arrays, Keras variables
or tensors; row view = one row per weight vector).
"""

from __future__ import annotations

from laperm.viz.authors_code import plot_position_agreement, plot_seed_accuracies
from laperm.viz.locations import plot_repermutation
from laperm.viz.permutations import (
    animate_reconnection,
    plot_augmented,
    plot_one_sync,
    plot_permutation_trace,
    plot_rank_heatmap,
    plot_settling,
    plot_vectors_as_images,
)
from laperm.viz.profiles import (plot_profile_grid, plot_profiles_before_after,
                                 plot_profiles_side_by_side, plot_weight_profiles)
from laperm.viz.results import (
    plot_checkpoint_scores,
    plot_convergence,
    plot_paper_rows,
    plot_section_times,
)
from laperm.viz.style import set_style
from laperm.viz.sweeps import (
    plot_connection_counts,
    plot_pruning_sweep,
    plot_sawtooth_zoom,
    plot_sync_period_sweep,
)
from laperm.viz.training import (
    THREE_EVALUATIONS,
    plot_precision_over_training,
    plot_run_curves,
    plot_sawtooth,
    plot_speedups,
    plot_three_evaluations,
    plot_training_curves,
)

__all__ = [
    "THREE_EVALUATIONS",
    "animate_reconnection",
    "plot_augmented",
    "plot_checkpoint_scores",
    "plot_connection_counts",
    "plot_convergence",
    "plot_one_sync",
    "plot_paper_rows",
    "plot_permutation_trace",
    "plot_position_agreement",
    "plot_precision_over_training",
    "plot_pruning_sweep",
    "plot_profile_grid",
    "plot_profiles_before_after",
    "plot_profiles_side_by_side",
    "plot_rank_heatmap",
    "plot_repermutation",
    "plot_run_curves",
    "plot_sawtooth",
    "plot_sawtooth_zoom",
    "plot_section_times",
    "plot_seed_accuracies",
    "plot_settling",
    "plot_speedups",
    "plot_sync_period_sweep",
    "plot_three_evaluations",
    "plot_training_curves",
    "plot_vectors_as_images",
    "plot_weight_profiles",
    "set_style",
]
