"""The training-throughput record of ``benchmarks/bench_cifar.py``, read for the book.

The benchmark (run by hand, with the machine's long runs paused) trains each
CIFAR-10 model of Sections 5.2-5.4 with LaPerm at the paper's k, batch 50 and
the paper's augmentation in several ways side by side: the previous release's
path (``before``, the reference), today's default, ``mixed_bfloat16``, the
fused kernels of :mod:`laperm.method.fused`, and both.  It stores
``benchmarks/results/cifar_<backend>.json``; this module turns that record
into tables and a label saying when, where and at which commit it was made.
:func:`precision_check` reads the runs that test whether ``mixed_bfloat16``
changes a result beyond the noise between seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from laperm.book.page import hardware_label
from laperm.project import project_root

__all__ = ["SPEEDUP_TARGET", "WAY_NAMES", "load_cifar_benchmark", "precision_check", "speed_label",
           "speed_table", "speedup_summary"]

#: The speed-up over the previous release that the CIFAR models' training was to reach.
SPEEDUP_TARGET = 2.0

#: How the book names the benchmark's ways.
WAY_NAMES = {
    "before": "previous release (float32)",
    "default": "default (float32)",
    "bfloat16": "mixed_bfloat16",
    "fused": "fused kernels (float32)",
    "fused_bfloat16": "fused kernels + mixed_bfloat16",
}


def load_cifar_benchmark(root=None, backend: str = "tensorflow") -> dict | None:
    """The stored record of ``bench_cifar.py`` (or None when there is none).

    Args:
        root: the project folder (default: the checkout this package runs from).
        backend: the Keras backend the benchmark ran under.
    """
    base = project_root(root, required=False)
    path = Path(base or ".") / "benchmarks" / "results" / f"cifar_{backend}.json"
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return payload if payload.get("rows") and "ratio_to_default" in payload["rows"][0] else None


def speed_table(payload: dict) -> pd.DataFrame:
    """One row per model and way: images/s, the speed-up over ``before`` and over ``default``."""
    rows = pd.DataFrame(payload["rows"])
    return pd.DataFrame({
        "model": rows["model"],
        "way": rows["way"].map(lambda w: WAY_NAMES.get(w, w)),
        "images/s": rows["images_per_s"],
        "x previous release": rows["ratio_to_before"],
        "x default": rows["ratio_to_default"],
        "GFLOP/s": rows["gflop_per_s"],
    })


def speedup_summary(payload: dict) -> pd.DataFrame:
    """Per model: the fastest way, its speed-ups, and whether it meets the target.

    The target is judged on the smaller of the two speed-ups (over the previous
    release and over today's default path): the previous release's pipeline
    has rounds of two speeds on this machine, so either reference alone can
    flatter.
    """
    rows = pd.DataFrame(payload["rows"])
    best = rows.loc[rows.groupby("model", sort=False)["images_per_s"].idxmax()]
    worst_case = best[["ratio_to_before", "ratio_to_default"]].min(axis=1)
    return pd.DataFrame({
        "model": best["model"].to_numpy(),
        "fastest way": best["way"].map(lambda w: WAY_NAMES.get(w, w)).to_numpy(),
        "images/s": best["images_per_s"].to_numpy(),
        "x previous release": best["ratio_to_before"].to_numpy(),
        "x default": best["ratio_to_default"].to_numpy(),
        f"meets {SPEEDUP_TARGET:g}x": (worst_case >= SPEEDUP_TARGET).to_numpy(),
    })


def speed_label(payload: dict) -> str:
    """When, where and at which commit the benchmark ran, for a caption."""
    env = payload.get("environment", {})
    versions = env.get("versions", {})
    commit = (env.get("commit") or "?")[:7]
    backend = versions.get("backend", "?")
    return (f"benchmarks/bench_cifar.py, {env.get('date', '?')[:10]}, "
            f"{hardware_label(env.get('hardware'))}, {backend} "
            f"{versions.get(backend, '')}".rstrip() + f", commit {commit}")


def precision_check(records: pd.DataFrame, experiment: str = "conv2", epochs: int = 10,
                    metric: str = "test_accuracy_at_best_val") -> pd.DataFrame | None:
    """Does ``mixed_bfloat16`` change the result? Runs of one experiment at both precisions.

    Takes the LaPerm runs of ``experiment`` with ``epochs`` epochs, the fused kernels and
    the paper's input, one row per precision: the seeds, the mean of ``metric`` and the
    spread between seeds.

    Args:
        records: :func:`laperm.analysis.records.load_records` (or ``load_sources``).
        experiment: the paper experiment of the pair.
        epochs: the runs' number of epochs.
        metric: the accuracy compared.

    Returns:
        The table, with the difference of the means (points) and whether it is within the
        seed spread (the larger range between seeds of the two precisions); None when
        either precision has fewer than two seeds.
    """
    if records is None or not len(records) or "precision" not in records:
        return None
    runs = records[(records["experiment"] == experiment) & (records["optimizer"] == "laperm")
                   & (records["epochs_run"] == epochs) & (records["kernels"] == "fused")
                   & (records["train_fraction"] == 1.0)]
    if "paper_input" in runs:  # the pair differs in its precision only
        runs = runs[runs["paper_input"]]
    groups = {p: g.drop_duplicates("seed") for p, g in runs.groupby("precision")}
    if not {"float32", "mixed_bfloat16"} <= set(groups) or min(
            len(groups[p]) for p in ("float32", "mixed_bfloat16")) < 2:
        return None
    rows = [{"precision": p, "seeds": ", ".join(str(int(s)) for s in sorted(groups[p]["seed"])),
             "mean": groups[p][metric].mean(),
             "seed spread (points)": 100 * (groups[p][metric].max() - groups[p][metric].min())}
            for p in ("float32", "mixed_bfloat16")]
    table = pd.DataFrame(rows)
    diff = 100 * (table["mean"].iloc[1] - table["mean"].iloc[0])
    table["bfloat16 - float32 (points)"] = [None, diff]
    table["within seed spread"] = [None, abs(diff) <= table["seed spread (points)"].max()]
    return table


def precision_over_training(records: pd.DataFrame, histories: pd.DataFrame,
                            experiment: str = "conv2", optimizer: str = "laperm",
                            min_epochs: int = 20) -> pd.DataFrame | None:
    """Does ``mixed_bfloat16`` change a long run? One seed at both precisions, epoch by epoch.

    Takes the longest run of ``experiment`` and ``optimizer`` at each precision (the
    paper's input, all training images, the same seed) and sets their per-epoch test
    accuracies side by side over the epochs both reached.  One seed each: the
    difference is to be read against the test set's standard error, not as a seed
    spread.

    Args:
        records: :func:`laperm.analysis.records.load_records` rows of the runs in ``histories``.
        histories: :func:`laperm.analysis.records.load_histories` of the same folder.
        experiment: the paper experiment.
        optimizer: ``"laperm"`` or ``"adam"``.
        min_epochs: fewer common epochs than this give None.

    Returns:
        ``epoch, float32, mixed_bfloat16, difference (points)`` (bfloat16 minus
        float32), with the two runs' names and kernels in ``attrs``; None when no
        such pair exists.
    """
    if records is None or not len(records) or histories is None or not len(histories):
        return None
    runs = records[(records["experiment"] == experiment) & (records["optimizer"] == optimizer)
                   & (records["train_fraction"] == 1.0)]
    if "paper_input" in runs:
        runs = runs[runs["paper_input"]]
    by_precision = {p: g for p, g in runs.groupby("precision")}
    if not {"float32", "mixed_bfloat16"} <= set(by_precision):
        return None
    seeds = sorted(set(by_precision["float32"]["seed"])
                   & set(by_precision["mixed_bfloat16"]["seed"]))
    if not seeds:
        return None
    chosen = {p: by_precision[p][by_precision[p]["seed"] == seeds[0]]
              .sort_values("epochs_run").iloc[-1] for p in ("float32", "mixed_bfloat16")}
    curves = {p: histories[histories["run"] == row["run"]].set_index("epoch")["test_accuracy"]
              for p, row in chosen.items()}
    common = curves["float32"].index.intersection(curves["mixed_bfloat16"].index)
    if len(common) < min_epochs:
        return None
    table = pd.DataFrame({"epoch": common,
                          "float32": curves["float32"].loc[common].to_numpy(),
                          "mixed_bfloat16": curves["mixed_bfloat16"].loc[common].to_numpy()})
    table["difference (points)"] = 100 * (table["mixed_bfloat16"] - table["float32"])
    table.attrs = {"seed": int(seeds[0]), "experiment": experiment, "optimizer": optimizer,
                   **{f"{p}_run": row["run"] for p, row in chosen.items()},
                   **{f"{p}_kernels": row.get("kernels", "keras") for p, row in chosen.items()}}
    return table


def precision_over_training_summary(table: pd.DataFrame, last: int = 10) -> dict:
    """The numbers of one :func:`precision_over_training` pair: epochs compared,
    the mean difference over all of them and over the ``last`` ones, and the spread
    (standard deviation) of the epoch-to-epoch difference (points)."""
    diff = table["difference (points)"]
    return {"epochs": len(table), "mean": float(diff.mean()),
            f"mean_last_{last}": float(diff.tail(last).mean()), "sd": float(diff.std()),
            "last": last, "last_epoch": int(table["epoch"].iloc[-1])}
