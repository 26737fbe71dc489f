"""Read stored result records into tables (Results page, hazards; SPEC 6).

A run folder written by :func:`laperm.experiment.run` holds ``result.json``
and ``history.csv``.  These helpers collect every run below a root folder
(``results/`` for the committed long runs, ``_build/runs/<profile>`` for a
book execution) into pandas DataFrames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def iter_runs(root):
    """Yield ``(run folder, result dict)`` for every finished run below ``root``."""
    root = Path(root)
    if not root.is_dir():
        return
    for path in sorted(root.rglob("result.json")):
        try:
            yield path.parent, json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue


def load_records(root) -> pd.DataFrame:
    """One row per finished run below ``root``.

    Columns: run, experiment, model, optimizer, k, p, seed, scale, is_reduced,
    epochs_run, paper_epochs, train_fraction, best_epoch, best_val_accuracy,
    test_accuracy_at_best_val, final_test_accuracy, best_test_accuracy_any_epoch,
    paper_accuracy, test_set, wall_time_s, accelerator, date, commit.
    """
    rows = []
    for folder, r in iter_runs(root):
        cfg = r["config"]
        rows.append({
            "run": folder.name,
            "experiment": cfg["name"].removesuffix("_adam"),
            "model": cfg["model"],
            "optimizer": r["optimizer"],
            "k": cfg["sync_period"] if r["optimizer"] == "laperm" else None,
            "p": 0.0 if cfg.get("prune_keep") is None else round(1 - cfg["prune_keep"], 4),
            "seed": cfg["seed"],
            "scale": r["scale"]["label"],
            "is_reduced": r["scale"]["is_reduced"],
            "epochs_run": r["scale"]["epochs_run"],
            "paper_epochs": r["scale"]["paper_epochs"],
            "train_fraction": r["scale"]["train_fraction"],
            "best_epoch": r["best_epoch"],
            "best_val_accuracy": r["best_val_accuracy"],
            "test_accuracy_at_best_val": r["test_accuracy_at_best_val"],
            "final_test_accuracy": r["final_test_accuracy"],
            "best_test_accuracy_any_epoch": r.get("best_test_accuracy_any_epoch"),
            "paper_accuracy": r.get("paper_accuracy"),
            "test_set": r.get("test_set"),
            "wall_time_s": r.get("wall_time_s"),
            "accelerator": (r.get("hardware") or {}).get("accelerator"),
            "date": r.get("date"),
            "commit": r.get("commit"),
        })
    return pd.DataFrame(rows)


def load_histories(root) -> pd.DataFrame:
    """All per-epoch histories below ``root``, with ``run``/``optimizer`` columns."""
    frames = []
    for folder, r in iter_runs(root):
        path = folder / "history.csv"
        if path.exists():
            h = pd.read_csv(path)
            h.insert(0, "run", folder.name)
            h.insert(1, "optimizer", r["optimizer"])
            h.insert(2, "experiment", r["config"]["name"].removesuffix("_adam"))
            frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def seed_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds per experiment and optimizer."""
    if records.empty:
        return records
    keys = ["experiment", "optimizer", "k", "p", "scale"]
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


def hazard_table(root) -> pd.DataFrame:
    """The measurement hazards of SPEC 6, per LaPerm or Adam run with a history.

    Columns:
        test_at_best_val: test accuracy at the epoch chosen on validation
            (this project's rule).
        test_at_best_test: the best test accuracy over epochs (choosing the
            epoch on the test set, as the authors did: hazard 2).
        optimism_of_choosing_on_test: the difference (points of accuracy).
        mean_synced_minus_unsynced: mean over epochs of the test accuracy of
            synchronised minus unsynchronised weights (hazard 4; LaPerm only).
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
        row = {
            "run": folder.name,
            "optimizer": r["optimizer"],
            "scale": r["scale"]["label"],
            "epochs": len(h),
            "test_at_best_val": float(best_val_row["test_accuracy"]),
            "test_at_best_test": float(h["test_accuracy"].max()),
        }
        row["optimism_of_choosing_on_test"] = row["test_at_best_test"] - row["test_at_best_val"]
        if "test_accuracy_unsynced" in h and h["test_accuracy_unsynced"].notna().any():
            diff = h["test_accuracy"] - h["test_accuracy_unsynced"]
            row["mean_synced_minus_unsynced"] = float(diff.mean())
            row["final_unsynced_test"] = float(h["test_accuracy_unsynced"].iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows)
