"""Comparisons the Results page and the section pages draw from the run records.

LaPerm against Adam treated alike (:func:`pair_runs`, the one rule every pairing of the
book follows, and on it :func:`laperm_adam_pairs`, :func:`headline_pairs`,
:func:`final_epoch_batchnorm_pairs`, :func:`convergence_table`), seeds and inputs side by side
(:func:`comparison_table`, :func:`seed_summary`, :func:`input_comparison`), the
checks of the authors' evaluation protocol (:func:`measurement_checks`), every row
of the paper's table with its largest run (:func:`results_table`,
:func:`paper_coverage`), and the speed claim (:func:`convergence_table`).
The records come from :mod:`laperm.analysis.records`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laperm.analysis.records import (DEFAULT_ENGINE, NEVER_SYNCED, iter_runs, paper_experiment,
                                     run_settings, steps_run, synced, zero_fraction)
from laperm.models import has_batchnorm
from laperm.paper import EXPERIMENTS, PAPER_ACCURACY, row_label


def fmt(value, spec: str) -> str:
    """``format(value, spec)``, or ``"–"`` for None or NaN.

    >>> fmt(0.78214, ".2%"), fmt(float("nan"), ".2%")
    ('78.21%', '–')
    """
    return "–" if value is None or value != value else format(value, spec)


def comparison_table(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val"
                     ) -> pd.DataFrame:
    """Our runs beside the paper's table, ready to show (the Results page).

    One row per row of the paper's table, run, optimizer, k and scale; runs of
    several seeds are averaged (``± sd`` over seeds).  ``paper`` is filled for
    LaPerm runs only (the paper's numbers are LaPerm's); ``chosen on test`` is
    what the same runs would report if the epoch were picked on the test set.

    Args:
        records: :func:`load_records` (or :func:`load_sources`) rows.
        metric: the accuracy column reported as ``ours``.
    """
    if records.empty:
        return pd.DataFrame()
    order = {name: i for i, name in enumerate(PAPER_ACCURACY)}
    reduced = [f"{e}/{pe} ep., {n:,} images" for e, pe, n in
               zip(records["epochs_run"], records["paper_epochs"], records["n_train"])]
    synced_ = (records["synced"].astype(bool) if "synced" in records
               else pd.Series(True, index=records.index))
    # A LaPerm run that never synced trained as inner Adam (scored after the evaluation's one
    # sync): said so, no paper number.
    optimizer = np.where(synced_, records["optimizer"], "laperm (never synced)")
    df = records.assign(
        scale=np.where(records["scale"] == "paper scale", "paper scale", reduced),
        ours=records[metric], optimizer=optimizer,
        paper=[PAPER_ACCURACY.get(e) if o == "laperm" else None
               for e, o in zip(records["paper_experiment"], optimizer)],
        minutes=records["wall_time_s"] / 60,
    )
    key = ["paper_experiment", "experiment", "variant", "optimizer", "k", "scale"]
    g = (df.fillna({"k": -1, "paper_experiment": "–"}).groupby(key, sort=False)
         .agg(seeds=("ours", "size"), ours=("ours", "mean"), sd=("ours", "std"),
              on_test=("best_test_accuracy_any_epoch", "mean"), paper=("paper", "first"),
              n_test=("n_test", "first"), minutes=("minutes", "mean"))
         .reset_index())
    g = g.sort_values(["paper_experiment", "optimizer", "experiment"],
                      key=lambda c: c.map(order).fillna(99) if c.name == "paper_experiment"
                      else c)
    return pd.DataFrame({
        "paper experiment": g["paper_experiment"],
        "run": [e if not v else f"{e} ({v})" for e, v in zip(g["experiment"], g["variant"])],
        "optimizer": g["optimizer"], "k": g["k"].map(lambda v: "–" if v < 0 else f"{v:.0f}"),
        "scale": g["scale"], "seeds": g["seeds"],
        "ours (± sd)": [fmt(m, ".2%") + ("" if n < 2 else f" ± {sd * 100:.2f}")
                        for m, sd, n in zip(g["ours"], g["sd"], g["seeds"])],
        "paper": g["paper"].map(lambda v: fmt(v, ".2%")),
        "deviation (points)": ((g["ours"] - g["paper"].astype(float)) * 100).map(
            lambda v: fmt(v, "+.2f")),
        "chosen on test": g["on_test"].map(lambda v: fmt(v, ".2%")),
        "test images": g["n_test"].map(lambda v: fmt(v, ",.0f")),
        "min per run": g["minutes"].map(lambda v: fmt(v, ".1f")),
    })


def seed_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds per experiment and optimizer."""
    if records.empty:
        return records
    keys = ["experiment", "variant", "optimizer", "k", "p", "scale"]
    g = records.fillna({"k": -1}).groupby(keys, dropna=False)
    out = g.agg(
        seeds=("seed", "count"),
        test_at_best_val_mean=("test_accuracy_at_best_val", "mean"),
        test_at_best_val_std=("test_accuracy_at_best_val", "std"),
        final_test_mean=("final_test_accuracy", "mean"),
        best_test_any_epoch_mean=("best_test_accuracy_any_epoch", "mean"),
        paper_accuracy=("paper_accuracy", "first"),
        wall_time_s_mean=("wall_time_s", "mean"),
    ).reset_index()
    out["k"] = out["k"].replace(-1, np.nan)
    return out


def measurement_checks(root) -> pd.DataFrame:
    """How much the authors' evaluation choices change the numbers, per LaPerm or
    Adam run with a history: choosing the epoch on the test set, and evaluating
    unsynchronised weights.

    Columns (accuracies as fractions):
        run, experiment, optimizer, k, seed, scale, precision, variant, epochs:
            which run (:func:`run_settings`).
        test_at_best_val: test accuracy at the epoch chosen on validation
            (this project's rule).
        test_at_best_test: the best test accuracy over epochs (choosing the
            epoch on the test set, as the authors did).
        optimism_of_choosing_on_test: the difference.
        mean_synced_minus_unsynced: mean over epochs of the test accuracy of
            synchronised minus unsynchronised weights (the authors' CIFAR
            notebooks evaluated unsynchronised weights; LaPerm only).
        final_unsynced_test, final_synced_test: the last epoch's test
            accuracy of the weights as they are (not a permutation of theta_0
            unless the epoch ended on a sync) and after synchronising them.
        mean_recalibrated_minus_stale: mean over epochs of the test accuracy
            of synchronised weights with BatchNorm statistics re-estimated
            for them minus with the statistics left from before the sync
            (models with BatchNorm; NaN otherwise).
        final_stale_bn_test: the last epoch's test accuracy with stale
            BatchNorm statistics.
    """
    rows = []
    for folder, r in iter_runs(root):
        path = folder / "history.csv"
        if not path.exists():
            continue
        h = pd.read_csv(path)
        if h.empty:
            continue
        best_val_row = h.loc[h["val_accuracy"].idxmax()]
        settings = run_settings(r)
        steps = steps_run(r["scale"]["n_train"], r["config"]["batch_size"], len(h))
        if not synced(settings["optimizer"], steps, settings["k"]):
            settings = {**settings, "optimizer": "laperm (never synced)"}
        row = {
            "run": folder.name,
            **{key: settings[key]
               for key in ("experiment", "optimizer", "k", "seed", "scale", "precision",
                           "variant")},
            "epochs": len(h),
            "test_at_best_val": float(best_val_row["test_accuracy"]),
            "test_at_best_test": float(h["test_accuracy"].max()),
        }
        row["optimism_of_choosing_on_test"] = row["test_at_best_test"] - row["test_at_best_val"]
        if "test_accuracy_unsynced" in h and h["test_accuracy_unsynced"].notna().any():
            diff = h["test_accuracy"] - h["test_accuracy_unsynced"]
            row["mean_synced_minus_unsynced"] = float(diff.mean())
            row["final_unsynced_test"] = float(h["test_accuracy_unsynced"].iloc[-1])
            row["final_synced_test"] = float(h["test_accuracy"].iloc[-1])
        if "test_accuracy_stale_bn" in h and h["test_accuracy_stale_bn"].notna().any():
            diff = h["test_accuracy"] - h["test_accuracy_stale_bn"]
            row["mean_recalibrated_minus_stale"] = float(diff.mean())
            row["final_stale_bn_test"] = float(h["test_accuracy_stale_bn"].iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows)


def input_comparison(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val"
                     ) -> pd.DataFrame:
    """What another input preprocessing changes: runs on another input beside the
    runs with the paper experiment's input that differ from them in nothing else
    (Section 5.2: the authors' CIFAR-10 notebooks fed raw 0-255 pixels where
    standardised input was meant).

    Runs are paired on experiment, optimizer, k, scale, precision and source;
    accuracies are means over seeds.

    Args:
        records: :func:`load_records` (or :func:`load_sources`) rows.
        metric: the accuracy column compared.

    Returns:
        One row per experiment, optimizer, k, scale, precision, source and other
        input: those columns, ``input`` (the other preprocessing),
        ``paper_input_name`` (the paper experiment's), ``seeds_paper_input``,
        ``seeds``, ``accuracy_paper_input`` (NaN when no run with the paper's
        input matches), ``accuracy`` and ``difference`` (other minus paper's
        input, a fraction).  Empty when no run has another input.
    """
    if records.empty or "paper_input" not in records or records["paper_input"].all():
        return pd.DataFrame()
    keys = ["experiment", "optimizer", "k", "scale", "precision", "source"]
    df = records.assign(k=records["k"].fillna(-1),
                        source=records["source"] if "source" in records else "records")
    base = df[df["paper_input"]]
    rows = []
    for (*key, preprocessing), g in df[~df["paper_input"]].groupby(keys + ["preprocessing"],
                                                                     sort=False):
        match = base[np.logical_and.reduce([base[c] == v for c, v in zip(keys, key)])]
        paper_accuracy = match[metric].mean() if len(match) else np.nan
        rows.append({
            **dict(zip(keys, key)), "input": preprocessing,
            "paper_input_name": match["preprocessing"].iloc[0] if len(match) else None,
            "seeds_paper_input": match["seed"].nunique(), "seeds": g["seed"].nunique(),
            "accuracy_paper_input": paper_accuracy, "accuracy": g[metric].mean(),
            "difference": g[metric].mean() - paper_accuracy,
        })
    out = pd.DataFrame(rows)
    out["k"] = out["k"].replace(-1, np.nan)
    return out


#: What must be equal for two runs to be compared, beside their paper experiment:
#: where they come from, their scale, input, training images, arithmetic and hardware.
COMPARABLE = ["source", "scale", "preprocessing", "n_train", "precision", "kernels",
              "device", "engine"]


def only_synced(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` without the LaPerm runs that never synced (:func:`synced`).

    Every table that calls a run LaPerm reads its records through this.
    """
    if records.empty or "synced" not in records:
        return records
    return records[records["synced"].astype(bool)]


def _comparable(records: pd.DataFrame) -> pd.DataFrame:
    """The rows a LaPerm − Adam comparison may use (:func:`only_synced`), with the
    columns of :data:`COMPARABLE` that older records lack filled by their defaults."""
    df = only_synced(records.assign(
        source=records["source"] if "source" in records else "records"))
    for column, default in (("device", "unknown"), ("engine", DEFAULT_ENGINE),
                            ("kernels", "keras")):
        if column not in df:
            df = df.assign(**{column: default})
    return df


def pair_runs(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val", *,
              by_seed: bool = False, keys=None) -> pd.DataFrame:
    """Every LaPerm run beside the Adam runs it may be compared with: the one rule by
    which the book pairs LaPerm with Adam (every LaPerm − Adam number is built on it).

    A LaPerm run that synced at least once (:func:`only_synced`) is paired with the Adam
    runs of the same experiment (its row of the paper's table, ``paper_experiment``;
    its own ``experiment`` when it has no row: a control is never paired with the
    paper's Adam) that agree on every column of ``keys`` present in ``records``
    (:data:`COMPARABLE`: source, scale, input, training images, precision, kernels,
    device, engine) and, with ``by_seed``, on the seed. A LaPerm run of Conv2 is thus
    never set beside an Adam run of Conv4, of F1 beside F2, of ResNet50 p = 70% beside
    the dense ResNet50, of bfloat16 beside float32 or of a GPU beside a CPU.

    Args:
        records: :func:`laperm.analysis.records.load_records` rows (a unique index);
            columns it lacks among ``keys`` are not compared (a table of one
            execution holds one device).
        metric: the accuracy column compared.
        by_seed: pair only runs of the same seed (a page's runs, one by one).
        keys: the columns that must agree (default :data:`COMPARABLE`).

    Returns:
        One row per LaPerm run with a baseline, indexed as in ``records``: ``run``,
        ``experiment``, ``paper_experiment``, ``seed``, ``LaPerm`` (its ``metric``),
        ``Adam`` (the mean of its baseline's), ``adam_index`` and ``adam_runs``
        (the baseline's index in ``records`` and names, tuples), ``adam_seeds``
        and ``LaPerm − Adam (points)``. Empty without any pair.
    """
    columns = ["run", "experiment", "paper_experiment", "seed", "LaPerm", "Adam",
               "adam_index", "adam_runs", "adam_seeds", "LaPerm − Adam (points)"]
    if records is None or records.empty:
        return pd.DataFrame(columns=columns)
    df = _comparable(records)
    row = df["paper_experiment"] if "paper_experiment" in df else df["experiment"]
    df = df.assign(_row=row.where(row.notna(), df["experiment"]))
    keys = ["_row"] + [k for k in (COMPARABLE if keys is None else keys) if k in df.columns]
    keys += ["seed"] if by_seed else []
    adams = df[df["optimizer"] == "adam"]
    rows = {}
    for i, r in df[df["optimizer"] == "laperm"].iterrows():
        same = adams[np.logical_and.reduce([adams[k] == r[k] for k in keys])] if len(adams) \
            else adams
        if not len(same):
            continue
        names = same["run"] if "run" in same else same.index.to_series()
        rows[i] = {"run": r["run"] if "run" in r else i, "experiment": r["experiment"],
                   "paper_experiment": r.get("paper_experiment"), "seed": r.get("seed"),
                   "LaPerm": r[metric], "Adam": same[metric].mean(),
                   "adam_index": tuple(same.index), "adam_runs": tuple(names),
                   "adam_seeds": same["seed"].nunique() if "seed" in same else len(same)}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns[:-1])
    out["LaPerm − Adam (points)"] = (out["LaPerm"].astype(float)
                                     - out["Adam"].astype(float)) * 100
    return out


def _paired_groups(df: pd.DataFrame, pairs: pd.DataFrame, by: list):
    """``(key, LaPerm rows, their Adam baseline rows)`` per group of the paired LaPerm
    runs of :func:`pair_runs` (``df`` the records it was given)."""
    for key, g in df.loc[pairs.index].groupby(by, dropna=False):
        adam = sorted(set().union(*pairs.loc[g.index, "adam_index"]))
        yield key, g, df.loc[adam]


def laperm_adam_pairs(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val"
                      ) -> pd.DataFrame:
    """Each group of LaPerm runs beside its Adam baseline (Section 5: LaPerm
    trains about as well as Adam on the same networks).

    LaPerm runs that synced at least once (:func:`only_synced`) are grouped by
    experiment, :func:`variant` and :data:`COMPARABLE` (source, scale, input,
    training images, precision, kernels, device, engine); their baseline is
    the Adam runs of the same paper experiment that agree on all of
    :data:`COMPARABLE` (Conv7 with k = 20 and k = 1200 share one).  A group
    without such a baseline has no row: runs at another scale, precision or
    device are never compared.  Accuracies are means over seeds.

    Args:
        records: :func:`latest_snapshots` of :func:`load_sources` (or
            :func:`load_records`) rows.
        metric: the accuracy column compared.

    Returns:
        One row per group that has a baseline, in the paper's order:
        ``experiment, source, device, scale, variant`` (``"–"`` for the
        paper's settings), ``kernels``, ``seeds`` (LaPerm), ``Adam seeds``,
        ``LaPerm``, ``Adam``, ``paper_input``, ``model`` and ``LaPerm − Adam
        (points)``.
    """
    if records.empty:
        return pd.DataFrame()
    df = _comparable(records.reset_index(drop=True))
    pairs = pair_runs(df, metric)
    order = list(PAPER_ACCURACY)
    rows = []
    for (exp, variant_name, *_), g, same in _paired_groups(
            df, pairs, ["experiment", "variant", *COMPARABLE]):
        first = g.iloc[0]
        rows.append({"experiment": exp, "source": first["source"], "device": first["device"],
                     "scale": first["scale"], "variant": variant_name or "–",
                     "kernels": first["kernels"], "seeds": g["seed"].nunique(),
                     "Adam seeds": same["seed"].nunique(),
                     "LaPerm": g[metric].mean(), "Adam": same[metric].mean(),
                     "paper_input": bool(first["paper_input"]), "model": first["model"],
                     "order": order.index(first["paper_experiment"])
                     if first["paper_experiment"] in order else len(order)})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).sort_values(["order", "experiment", "source", "device"],
                                         kind="stable")
    out["LaPerm − Adam (points)"] = (out["LaPerm"] - out["Adam"]) * 100
    return out.drop(columns="order").reset_index(drop=True)


def headline_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """LaPerm against Adam with BatchNorm statistics handled alike on both sides.

    For a model without BatchNorm (Conv7, F1, F2) the pair of
    :func:`laperm_adam_pairs` is compared at the epoch chosen on validation.
    For a model with BatchNorm, LaPerm's accuracies are measured with
    statistics re-estimated after the sync while Adam's are as trained; the
    headline is then the last epoch with both re-estimated
    (:func:`final_epoch_batchnorm_pairs`), and a pair without that
    measurement on both sides is left out.

    Args:
        records: :func:`latest_snapshots` of :func:`load_sources` rows.

    Returns:
        ``experiment, source, device, scale, variant, seeds, LaPerm, Adam,
        BatchNorm`` (how it was handled), ``LaPerm − Adam (points)``.
    """
    pairs = laperm_adam_pairs(records)
    if pairs.empty:
        return pd.DataFrame()
    keys = ["experiment", "source", "device", "scale", "variant"]
    plain = pairs[~pairs["model"].map(has_batchnorm)].assign(
        BatchNorm="none in the model (epoch chosen on validation)")
    alike = final_epoch_batchnorm_pairs(records)
    if len(alike):
        alike = alike.rename(columns={"LaPerm re-estimated": "LaPerm",
                                      "Adam re-estimated": "Adam",
                                      "LaPerm − Adam, both re-estimated (points)":
                                      "LaPerm − Adam (points)"})
        alike = alike.assign(BatchNorm="re-estimated on both sides (last epoch)")
    columns = keys + ["seeds", "LaPerm", "Adam", "BatchNorm", "LaPerm − Adam (points)"]
    out = pd.concat([plain[columns]] + ([alike[columns]] if len(alike) else []))
    order = {e: i for i, e in enumerate(pairs["experiment"].drop_duplicates())}
    return out.sort_values("experiment", key=lambda c: c.map(order), kind="stable"
                           ).reset_index(drop=True)


def final_epoch_batchnorm_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """LaPerm against Adam at the last epoch, with BatchNorm statistics treated
    alike on both sides (Section 4, evaluation).

    The re-estimation runs on training images *without* augmentation, while
    the statistics BatchNorm keeps in training describe augmented images; so
    it can change a network that never syncs too.  LaPerm's primary number is
    re-estimated; an Adam run is re-estimated once, at its end.  This puts the
    two side by side both ways: both re-estimated, and neither (LaPerm with
    the stale statistics, Adam as trained).

    Args:
        records: :func:`latest_snapshots` of :func:`load_sources` (or
            :func:`load_records`) rows.

    Returns:
        One row per pair of :func:`laperm_adam_pairs` (same scale, precision,
        kernels and device) where both sides have these measurements:
        ``experiment, source, device, scale, variant, kernels, seeds``, ``LaPerm re-estimated``, ``Adam
        re-estimated``, ``LaPerm stale``, ``Adam as trained`` (means over
        seeds), ``Adam: re-estimated − as trained (points)``, ``LaPerm − Adam,
        both re-estimated (points)`` and ``LaPerm − Adam, neither (points)``.
        Empty when no pair has them.
    """
    needed = {"final_test_accuracy_stale_bn", "final_test_accuracy_recalibrated_bn_adam"}
    if records.empty or not needed <= set(records.columns):
        return pd.DataFrame()
    lap = records["optimizer"] == "laperm"
    final, stale = records["final_test_accuracy"], records["final_test_accuracy_stale_bn"]
    adam_reestimated = records["final_test_accuracy_recalibrated_bn_adam"]
    df = records.assign(reestimated=np.where(lap, final, adam_reestimated),
                        neither=np.where(lap, stale, final))
    df = df[np.where(lap, stale.notna(), adam_reestimated.notna())]
    both = laperm_adam_pairs(df, "reestimated")
    if both.empty:
        return pd.DataFrame()
    neither = laperm_adam_pairs(df, "neither")
    keys = ["experiment", "source", "device", "scale", "variant", "kernels"]
    out = both.merge(neither[keys + ["LaPerm", "Adam"]], on=keys, suffixes=("", " neither"))
    if out.empty:
        return pd.DataFrame()
    out = out.rename(columns={"LaPerm": "LaPerm re-estimated", "Adam": "Adam re-estimated",
                              "LaPerm neither": "LaPerm stale",
                              "Adam neither": "Adam as trained"})
    out["Adam: re-estimated − as trained (points)"] = (
        out["Adam re-estimated"] - out["Adam as trained"]) * 100
    out["LaPerm − Adam, both re-estimated (points)"] = out.pop("LaPerm − Adam (points)")
    out["LaPerm − Adam, neither (points)"] = (out["LaPerm stale"] - out["Adam as trained"]) * 100
    return out.drop(columns=["paper_input", "model", "Adam seeds"]).reset_index(drop=True)


#: The former name of :func:`measurement_checks`.
hazard_table = measurement_checks


def results_table(runs: dict, paper_names: dict | None = None) -> pd.DataFrame:
    """One row per run: settings, accuracies, the paper's number, wall time.

    Args:
        runs: ``{label: (history DataFrame or None, result dict)}``, as returned
            by :func:`laperm.experiment.run` or :func:`stored_runs`.
        paper_names: ``{label: key of PAPER_ACCURACY}`` where the run's
            experiment name is not the key (e.g. ``conv7_k20`` -> ``conv7``).

    Returns:
        A DataFrame indexed by label, with the row of the paper's table each run
        belongs to (``paper row``, e.g. ``conv7`` for ``conv7_k20``) and its ``seed``.  ``paper`` is filled for
        LaPerm runs that synced at least once (:func:`synced`) only: the paper's
        table has no Adam numbers, and a LaPerm run stopped before its first
        sync trained as inner Adam (scored after the evaluation's one sync),
        labelled so (:data:`NEVER_SYNCED`).
    """
    paper_names = paper_names or {}
    rows = []
    for label, (history, result) in runs.items():
        settings, scale = run_settings(result), result["scale"]
        steps = steps_run(scale["n_train"], result["config"]["batch_size"], scale["epochs_run"])
        is_laperm = settings["optimizer"] == "laperm"
        reconnected = synced(settings["optimizer"], steps, result["config"]["sync_period"])
        experiment = paper_names.get(label, result["name"])
        row = paper_names.get(label) or paper_experiment(result["config"]) or result["name"]
        rows.append({
            "run": label,
            "paper row": row,
            "seed": result["config"]["seed"],
            "optimizer": ("Adam" if not is_laperm else "LaPerm (inner Adam)" if reconnected
                          else NEVER_SYNCED),
            "k": settings["k"] if is_laperm else np.nan,
            "syncs": (history["sync_count"].iloc[-1]
                      if is_laperm and history is not None and "sync_count" in history
                      else np.nan),
            "p": zero_fraction(result),
            "scale": scale["label"],
            "steps": steps,
            "best val acc": result["best_val_accuracy"],
            "test acc at best val": result["test_accuracy_at_best_val"],
            "final test acc": result["final_test_accuracy"],
            "best test acc, any epoch": result.get("best_test_accuracy_any_epoch"),
            "paper": (PAPER_ACCURACY.get(experiment, np.nan)
                      if is_laperm and reconnected else np.nan),
            "wall time (s)": result.get("wall_time_s"),
        })
    return pd.DataFrame(rows).set_index("run")


def _largest_run(runs: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """The run that saw the most training images, and the runs of its scale, source
    and :func:`variant` (never averaged over precisions)."""
    largest = runs.loc[(runs["n_train"] * runs["epochs_run"]).idxmax()]
    same = (runs["scale"] == largest["scale"]) & (runs["source"] == largest["source"])
    if "variant" in runs:
        same &= runs["variant"] == largest["variant"]
    return largest, runs[same]


def paper_coverage(records: pd.DataFrame) -> pd.DataFrame:
    """For every row of the paper's table: our largest LaPerm run beside its Adam baseline.

    Args:
        records: :func:`load_records` rows, possibly from several folders
            concatenated with a ``source`` column (e.g. committed / this build).

    Returns:
        One row per experiment of ``PAPER_ACCURACY``, in the paper's order:
        ``experiment, paper, scale, source, seeds, laperm, laperm_sd, adam,
        adam_largest, adam_largest_scale, images_per_s, paper_scale_hours``.
        The LaPerm run chosen is the one that saw the most training images
        (paper scale when there is one); ``adam`` is the mean of the Adam
        baselines at the same scale and source; ``laperm``/``adam`` are test
        accuracies at the best validation epoch.  ``adam_largest`` is the Adam
        run that saw the most training images (mean over its seeds), at
        ``adam_largest_scale``, whatever the LaPerm runs' scale.
        ``images_per_s`` is the training throughput measured by the runs of
        the same model and hardware together (total training images over total
        wall time, evaluation included), and ``paper_scale_hours`` what one
        paper-scale run would take at that rate.  Experiments without a LaPerm
        record have NaN results.  Only runs with the paper experiment's input
        preprocessing count for its row (a CIFAR-10 run on standardised input
        answers another question than the paper's raw-pixel runs); their speed
        counts all the same.
    """
    every = only_synced(records).copy()
    if "source" not in every:
        every["source"] = "records"
    df = every[every["paper_input"]] if "paper_input" in every else every
    rows = []
    for name, paper in PAPER_ACCURACY.items():
        ref = EXPERIMENTS[name]
        row = {"experiment": name, "paper": paper, "scale": None, "source": None, "seeds": 0,
               "laperm": np.nan, "laperm_sd": np.nan, "adam": np.nan,
               "adam_largest": np.nan, "adam_largest_scale": None,
               "images_per_s": np.nan, "paper_scale_hours": np.nan}
        mine = df[df["experiment"] == name] if len(df) else df
        lap = mine[mine["optimizer"] == "laperm"] if len(mine) else mine
        adams = mine[mine["optimizer"] == "adam"] if len(mine) else mine
        if len(lap):
            best, same = _largest_run(lap)
            adam = adams[(adams["scale"] == best["scale"]) & (adams["source"] == best["source"])]
            if "variant" in adam and (adam["variant"] == best["variant"]).any():
                adam = adam[adam["variant"] == best["variant"]]
            row.update(scale=best["scale"], source=best["source"], seeds=len(same),
                       laperm=same["test_accuracy_at_best_val"].mean(),
                       laperm_sd=same["test_accuracy_at_best_val"].std(),
                       adam=adam["test_accuracy_at_best_val"].mean() if len(adam) else np.nan)
        if len(adams):
            largest, same = _largest_run(adams)
            row.update(adam_largest=same["test_accuracy_at_best_val"].mean(),
                       adam_largest_scale=largest["scale"])
        model = every[every["model"] == ref.model] if len(every) else every
        if len(model) and model["wall_time_s"].notna().any():
            # Images per second of all its runs together (long runs dominate,
            # tiny runs' fixed costs do not), on the fastest hardware that ran it.
            by_hw = model.assign(images=model["n_train"] * model["epochs_run"]).groupby(
                model["accelerator"].fillna("?"))[["images", "wall_time_s"]].sum()
            ips = (by_hw["images"] / by_hw["wall_time_s"]).max()
            full_train = (model["n_train"] / model["train_fraction"]).max()
            row.update(images_per_s=ips,
                       paper_scale_hours=full_train * ref.paper_epochs / ips / 3600)
        rows.append(row)
    return pd.DataFrame(rows)


#: The shares of its final test accuracy a run must reach (the speed claim).
CONVERGENCE_FRACTIONS = (0.90, 0.95, 0.99)


def epochs_to_reach(test_accuracy, fractions=CONVERGENCE_FRACTIONS) -> list[float]:
    """The first epoch (1-based) at which a run's test accuracy reaches each
    fraction of its final (last epoch's) test accuracy; NaN if never.

    >>> epochs_to_reach([0.5, 0.8, 0.9, 1.0])
    [3.0, 4.0, 4.0]
    """
    acc = np.asarray(test_accuracy, dtype=float)
    if not len(acc):
        return [np.nan] * len(fractions)
    out = []
    for f in fractions:
        hit = np.flatnonzero(acc >= f * acc[-1])
        out.append(float(hit[0] + 1) if len(hit) else np.nan)
    return out


def convergence_table(records: pd.DataFrame, histories: pd.DataFrame,
                      fractions=CONVERGENCE_FRACTIONS) -> pd.DataFrame:
    """How many epochs LaPerm and Adam need to reach 90/95/99 % of their final
    test accuracy (the paper's claim: LaPerm trains with speed similar to or
    better than Adam, Section 5).

    Runs are paired as in :func:`laperm_adam_pairs` (LaPerm runs that synced;
    the same paper experiment, variant, source, input, training images,
    precision, kernels, device and engine, on the seeds both sides ran)
    except that their numbers of epochs may differ: per seed the longest run
    of each side is taken, and
    every run is cut to the epochs all of them reached, so "final" is the test
    accuracy at that common last epoch on both sides.  Epochs are means over
    seeds.

    Args:
        records: :func:`load_records` (or :func:`load_sources`) rows.
        histories: :func:`load_histories` of the same runs (``run``, ``epoch``,
            ``test_accuracy``).

    Returns:
        One row per pair: ``experiment, device, variant, epochs`` (compared),
        ``seeds``, ``LaPerm final``, ``Adam final`` and, per fraction f,
        ``LaPerm f`` and ``Adam f`` (epochs, e.g. ``"LaPerm 90%"``).
    """
    if records.empty or histories.empty:
        return pd.DataFrame()
    df = _comparable(records)
    df = df[df["run"].isin(set(histories["run"]))]
    keys = [c for c in COMPARABLE if c != "scale"]
    longest = df.sort_values("epochs_run").groupby(
        ["experiment", "optimizer", "variant", "seed", *keys], dropna=False).tail(1)
    curves = {run: h.sort_values("epoch")["test_accuracy"].to_numpy()
              for run, h in histories.groupby("run")}
    rows = []
    pairs = pair_runs(longest, by_seed=True, keys=keys)
    for (exp, variant_name, *_), lap, adam in _paired_groups(
            longest, pairs, ["experiment", "variant", *keys]):
        first = lap.iloc[0]
        runs = {"LaPerm": list(lap["run"]), "Adam": list(adam["run"])}
        common = min(len(curves[r]) for side in runs.values() for r in side)
        row = {"experiment": exp, "device": first["device"], "variant": variant_name or "–",
               "epochs": common, "seeds": lap["seed"].nunique()}
        for side, names in runs.items():
            cut = [curves[r][:common] for r in names]
            row[f"{side} final"] = float(np.mean([c[-1] for c in cut]))
            reach = np.array([epochs_to_reach(c, fractions) for c in cut])
            for f, epochs in zip(fractions, reach.mean(axis=0)):
                row[f"{side} {f:.0%}"] = epochs
        rows.append(row)
    return pd.DataFrame(rows)


def three_evaluations_table(history: pd.DataFrame, epochs=(1, 5, 10, 25, 50, 100, 125)):
    """The three evaluations at a few epochs, and the gaps (points): early vs late training."""
    h = history.set_index("epoch")
    rows = []
    for e in [e for e in epochs if e in h.index] + ([] if h.index[-1] in epochs else [h.index[-1]]):
        r = h.loc[e]
        rows.append({"epoch": int(e), "re-estimated": r["test_accuracy"],
                     "stale BatchNorm": r["test_accuracy_stale_bn"],
                     "unsynchronised": r.get("test_accuracy_unsynced"),
                     "re-estimated − stale (points)": 100 * (r["test_accuracy"]
                                                             - r["test_accuracy_stale_bn"]),
                     "learning rate": r.get("learning_rate")})
    return pd.DataFrame(rows)


def records_table(records: pd.DataFrame, metric: str = "test_accuracy_at_best_val"
                  ) -> pd.DataFrame:
    """:func:`comparison_table` for the appendix of every record: each run named with the
    paper row it counts for when that differs from its experiment, and ``− paper`` only
    for runs at the paper's scale."""
    t = comparison_table(records, metric).rename(columns={
        "paper experiment": "paper row", "deviation (points)": "− paper (points)",
        "min per run": "minutes per run"})
    t["run"] = [run if run == row else f"{run} (row {row})" if row in PAPER_ACCURACY
                else f"{run} (no paper row)" for run, row in zip(t["run"], t["paper row"])]
    # Ours − paper only where the runs are at the paper's scale: a reduced run stops
    # short of the final accuracy by construction.
    t.loc[t["scale"] != "paper scale", "− paper (points)"] = "–"
    return t.drop(columns="paper row")


def laperm_adam_sentences(records: pd.DataFrame, model: str) -> list[str]:
    """One sentence per :func:`laperm_adam_pairs` pair of ``model``: both accuracies, the gap
    and the standard error of the gap (Section 5.1: LaPerm against Adam).

    The standard error treats the two accuracies as independent binomial samples
    of the model's test images (those of its first record):
    ``sqrt((a (1 - a) + b (1 - b)) / n)``, in points.
    """
    pairs = laperm_adam_pairs(records)
    pairs = pairs[pairs["model"] == model]
    if not len(pairs):
        return []
    n_test = int(records.loc[records["model"] == model, "n_test"].iloc[0])
    lines = []
    for _, r in pairs.iterrows():
        se = 100 * np.sqrt((r["LaPerm"] * (1 - r["LaPerm"]) + r["Adam"] * (1 - r["Adam"]))
                           / n_test)
        lines.append(
            f"{r['experiment']} ({r['device']}, {r['scale']}, {r['seeds']} LaPerm seed(s), "
            f"{r['Adam seeds']} Adam seed(s)): LaPerm {r['LaPerm']:.2%}, Adam {r['Adam']:.2%}, "
            f"LaPerm − Adam {r['LaPerm − Adam (points)']:+.2f} points; standard error of the "
            f"difference on {n_test:,} test images about {se:.2f} points.")
    return lines


def paper_row_runs(records: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs the "ours against the paper" figure draws: one dot each.

    LaPerm runs that synced at least once (a LaPerm run that never synced is not
    a LaPerm run, :func:`only_synced`) and Adam runs
    of a row of the paper's table, with the paper's input and a value of ``metric``.

    Args:
        records: :func:`laperm.analysis.records.load_sources` rows.
        metric: the accuracy column drawn.
    """
    if not len(records):
        return records
    shown = only_synced(records).dropna(subset=["paper_experiment", metric])
    return shown[shown["experiment"].isin(list(PAPER_ACCURACY)) & shown["paper_input"]]


def paper_row_labels(shown: pd.DataFrame) -> list[str]:
    """The name of each row of the paper's table, in its order, saying what ran for it.

    ``"Conv7"`` when a run at the paper's scale is among ``shown``
    (:func:`paper_row_runs`), ``"Conv7  (reduced)"`` when only reduced runs are,
    ``"Conv7  (no run)"`` when none is.
    """
    full = set(shown.loc[shown["scale"] == "paper scale", "experiment"]) if len(shown) else set()
    ran = set(shown["experiment"]) if len(shown) else set()
    return [row_label(n) + ("" if n in full else "  (reduced)" if n in ran else "  (no run)")
            for n in PAPER_ACCURACY]
