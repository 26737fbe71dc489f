"""A run's trained weights against its initial weights θ0 (Sections 5.1, 5.4 and 5.5).

LaPerm only re-orders each weight vector, so the weights it trains are a
per-vector permutation of θ0 (:func:`permutation_checks`, Section 5.1); a
pruned θ0 keeps its number of zeros in every vector (:func:`layer_table`,
:func:`rewiring_summary`, Section 5.4); a shared-value θ0 keeps exactly the
two values {0, v} (:func:`kernel_values_table`, Section 5.5), and the mask
fixes how many inputs each unit has (:func:`output_connection_counts`).

θ0 is rebuilt from the config (its seed reproduces the initial weights
exactly, pruning and shared values included) and the trained weights are the
run folder's ``best.weights.h5`` (the best validation epoch, synchronised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pandas as pd

from laperm import experiment, pruning
from laperm.analysis import profiles
from laperm.method.optimizer import LaPerm
from laperm.paper import paper_config

#: The weights a run keeps: those of its best validation epoch (synchronised for LaPerm).
BEST_WEIGHTS = "best.weights.h5"


def load_pair(cfg, run_dir: str | Path):
    """``(θ0, trained)``: two models of ``cfg``, the second with the run's best weights.

    Args:
        cfg: the run's ``ExperimentConfig``.
        run_dir: the run's folder (holds :data:`BEST_WEIGHTS`).
    """
    theta0, _ = experiment.build_model(cfg)
    trained, _ = experiment.build_model(cfg)
    trained.load_weights(Path(run_dir) / BEST_WEIGHTS)
    return theta0, trained


def permuted_variables(cfg, theta0, trained) -> list[tuple[int, object, object]]:
    """``[(index, θ0 variable, trained variable)]`` of the variables LaPerm permutes under ``cfg``.

    Which variables are permuted follows the config's ``skip_bias`` and
    ``skip_bn`` (Conv7 permutes its biases too, Section 5.1); ``index`` counts
    the model's trainable weights from 0.
    """
    rules = LaPerm(sync_period=1, skip_bias=cfg.skip_bias, skip_bn=cfg.skip_bn)
    return [(i, v0, vt) for i, (v0, vt) in
            enumerate(zip(theta0.trainable_weights, trained.trainable_weights))
            if rules.should_permute(v0)]


def permutation_check(cfg, run_dir: str | Path) -> dict:
    """Whether every variable LaPerm permutes is a permutation of θ0, and how much moved.

    Returns:
        ``{"variables checked", "all are permutations of θ0", "share of weights
        that moved"}``; the share is the mean over weight vectors of the share
        of positions whose value differs from θ0 (close to 1 for Adam, which
        changes the values themselves).
    """
    checked = [(v0, vt) for _, v0, vt in permuted_variables(cfg, *load_pair(cfg, run_dir))]
    return {
        "variables checked": len(checked),
        "all are permutations of θ0": all(profiles.is_permutation_of(v0, vt)
                                          for v0, vt in checked),
        "share of weights that moved": float(np.mean(np.concatenate([
            np.ravel(profiles.moved_fraction(v0, vt, per_vector=True, check=False))
            for v0, vt in checked]))),
    }


def permutation_checks(configs: dict, run_dir: Callable) -> pd.DataFrame:
    """:func:`permutation_check` of every run, indexed by its label (Section 5.1).

    Args:
        configs: ``{label: ExperimentConfig}``.
        run_dir: ``cfg -> folder`` (a page's ``sec.run_dir``).

    Raises:
        AssertionError: a LaPerm run whose weights are not a permutation of θ0.
    """
    checks = pd.DataFrame([{"run": label, **permutation_check(cfg, run_dir(cfg))}
                           for label, cfg in configs.items()]).set_index("run")
    for label, cfg in configs.items():
        if cfg.optimizer == "laperm":
            assert checks.loc[label, "all are permutations of θ0"], label
    return checks


def layer_rows(label: str, cfg, run_dir: str | Path) -> list[dict]:
    """One row per permuted variable of a run: zeros, permutation, moved and rewired shares.

    ``rewired connections`` (:func:`laperm.analysis.profiles.moved_connections`)
    is the share of θ0's non-zero connections that now hold a zero; NaN for a
    variable without zeros (Section 5.4).
    """
    theta0, trained = load_pair(cfg, run_dir)
    rows = []
    for i, v0, vt in permuted_variables(cfg, theta0, trained):
        w0, wt = keras.ops.convert_to_numpy(v0), keras.ops.convert_to_numpy(vt)
        rows.append({
            "run": label, "variable": f"{i + 1}: {v0.name} {tuple(w0.shape)}",
            "kernel": w0.ndim > 1, "size": w0.size,
            "zeros at θ0": int((w0 == 0).sum()), "zeros trained": int((wt == 0).sum()),
            "permutation of θ0": profiles.is_permutation_of(w0, wt),
            "moved weights": profiles.moved_fraction(w0, wt),
            "rewired connections": (profiles.moved_connections(w0, wt)
                                    if (w0 == 0).any() else np.nan),
        })
    return rows


def layer_table(configs: dict, run_dir: Callable) -> pd.DataFrame:
    """:func:`layer_rows` of every LaPerm run of ``configs`` (Section 5.4).

    Raises:
        AssertionError: a permuted variable that is not a permutation of θ0,
            or whose number of zeros changed.
    """
    rows = [row for label, cfg in configs.items() if cfg.optimizer == "laperm"
            for row in layer_rows(label, cfg, run_dir(cfg))]
    layers = pd.DataFrame(rows)
    assert layers["permutation of θ0"].all(), "a LaPerm variable is not a permutation of theta_0"
    assert (layers["zeros at θ0"] == layers["zeros trained"]).all(), "the number of zeros changed"
    return layers


def rewiring_summary(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run, over its kernels: weights, zeros, moved weights and rewired connections.

    ``moved weights`` is weighted by kernel size, ``rewired connections`` by
    each kernel's non-zeros at θ0 (NaN for a run without zeros).
    """
    kernels = layers[layers["kernel"]]
    return kernels.groupby("run", sort=False).apply(lambda t: pd.Series({
        "kernel weights": t["size"].sum(),
        "zeros (θ0 = trained)": t["zeros at θ0"].sum(),
        "moved weights": np.average(t["moved weights"], weights=t["size"]),
        "rewired connections": (np.nan if t["zeros at θ0"].sum() == 0 else np.average(
            t["rewired connections"], weights=t["size"] - t["zeros at θ0"])),
    }), include_groups=False)


def pruning_tables(runs: dict) -> tuple[pd.DataFrame, pd.Series] | None:
    """The kept share of every kernel, per run, from the runner's pruning tables (Section 5.4).

    Args:
        runs: ``{label: (history, result)}``; a pruned run's result has
            ``result["init_tables"]["pruning"]``.

    Returns:
        ``(kernel x run table of kept fractions, kept share over all kernels per
        run)``, or None when no run is pruned.
    """
    kept = []
    for label, (_, result) in runs.items():
        rows = result["init_tables"].get("pruning")
        if rows:
            t = pd.DataFrame(rows)
            t["kernel"] = [f"{i + 1}: {tuple(shape)}" for i, shape in enumerate(t["shape"])]
            kept.append(t.assign(run=label))
    if not kept:
        return None
    kept = pd.concat(kept, ignore_index=True)
    pivot = kept.pivot_table(index="kernel", columns="run", values="kept_fraction", sort=False)
    overall = kept.groupby("run", sort=False).apply(
        lambda t: t["nonzero"].sum() / t["size"].sum(), include_groups=False)
    return pivot, overall.rename("kept overall")


def _values_text(values: np.ndarray) -> str:
    return (", ".join(f"{x:g}" for x in values) if len(values) <= 4
            else f"{values.min():.3g} … {values.max():.3g}")


def kernel_values_table(configs: dict, run_dir: Callable):
    """The distinct values and non-zeros of every kernel, θ0 and trained (Section 5.5).

    Args:
        configs: ``{label: ExperimentConfig}`` with a shared value ``v``.
        run_dir: ``cfg -> folder``.

    Returns:
        ``(table indexed by (run, kernel), {label: θ0 model}, {label: trained model})``.

    Raises:
        AssertionError: a LaPerm kernel with a value other than 0 and v, or
            another number of non-zeros than at θ0.
    """
    rows, initial, trained_models = [], {}, {}
    for label, cfg in configs.items():
        theta0, trained = load_pair(cfg, run_dir(cfg))
        initial[label], trained_models[label] = theta0, trained
        for i, ((_, v0), (_, vt)) in enumerate(zip(pruning.kernel_variables(theta0),
                                                    pruning.kernel_variables(trained))):
            w0, wt = keras.ops.convert_to_numpy(v0), keras.ops.convert_to_numpy(vt)
            values = np.unique(wt)
            rows.append({
                "run": label, "kernel": f"layer {i + 1}: {tuple(w0.shape)}",
                "non-zeros at θ0": int(np.count_nonzero(w0)),
                "non-zeros trained": int(np.count_nonzero(wt)),
                "distinct values trained": len(values), "values": _values_text(values),
            })
            if cfg.optimizer == "laperm":
                allowed = {0.0, float(np.float32(cfg.shared_value))}
                assert set(values.tolist()) <= allowed, (label, values)
                assert np.count_nonzero(wt) == np.count_nonzero(w0), label
    return pd.DataFrame(rows).set_index(["run", "kernel"]), initial, trained_models


def output_connection_counts(seeds, masks=("bernoulli", "per_unit"),
                             reference_h5: str | Path | None = None,
                             experiment_name: str = "f2") -> pd.DataFrame:
    """Connections per unit of the output layer, for the masks our seeds draw (Section 5.5).

    Args:
        seeds: seeds of ``paper_config(experiment_name)``.
        masks: ``shared_mask`` values: the paper's ``"bernoulli"`` and our
            control ``"per_unit"`` (every unit keeps round(keep x fan-in)).
        reference_h5: the authors' weight file (e.g. ``F2.h5``), added as
            ``"authors' F2.h5"`` when given.
        experiment_name: the experiment whose θ0 is drawn.

    Returns:
        Rows ``source, mask, digit, connections``.
    """
    rows = []

    def add(source, mask, kernel):
        rows.extend({"source": source, "mask": mask, "digit": digit, "connections": int(n)}
                    for digit, n in enumerate(pruning.unit_connection_counts(kernel)))

    for seed in seeds:
        for mask in masks:
            model, _ = experiment.build_model(paper_config(experiment_name, seed=seed,
                                                           shared_mask=mask))
            add(f"ours, seed {seed}, {mask}", mask,
                keras.ops.convert_to_numpy(pruning.kernel_variables(model)[-1][1]))
    if reference_h5 is not None:
        add(f"authors' {Path(reference_h5).name}", "bernoulli",
            pruning.h5_kernels(reference_h5)[-1][2])
    return pd.DataFrame(rows)


def rewired_per_kernel(layers: pd.DataFrame) -> pd.DataFrame | None:
    """Kernel x run table of the share of θ0's connections that were rewired (Section 5.4).

    Only kernels with zeros at θ0 (pruned runs); None when there is none.
    """
    kernels = layers[layers["kernel"]]
    pruned = kernels[kernels["zeros at θ0"] > 0]
    if not len(pruned):
        return None
    return pruned.pivot_table(index="variable", columns="run", values="rewired connections",
                              sort=False)


def first_kernel(model) -> np.ndarray:
    """The model's first kernel as a NumPy array (F1: its 784 x 10 weights, Section 5.5)."""
    return keras.ops.convert_to_numpy(pruning.kernel_variables(model)[0][1])
