"""Read stored result records into tables: one row per run, its settings, its history.

A run folder written by :func:`laperm.experiment.run` holds ``result.json``
and ``history.csv``.  These helpers collect every run below a root folder
(``results/`` for the committed long runs, ``_build/runs/<profile>`` for a
book execution) into pandas DataFrames; :mod:`laperm.analysis.comparisons`
draws the Results page's comparisons from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from laperm.config import experiment_name, steps_per_epoch
from laperm.paper import EXPERIMENTS, PAPER_ACCURACY


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


def run_settings(result: dict) -> dict:
    """The settings that tell runs of one experiment apart, from a result record.

    Returns:
        ``{"experiment", "model", "optimizer", "k", "p", "seed", "scale",
        "is_reduced", "epochs_run", "paper_epochs", "train_fraction", "n_train",
        "precision", "kernels", "preprocessing", "paper_input", "variant"}``: ``k`` is
        the sync period (None for a plain-optimizer run), ``p`` the share of
        weights pruned at random (0.0 when unpruned, Section 5.4),
        ``paper_input`` whether the run's input preprocessing is its paper
        experiment's (for CIFAR-10 the raw pixels the authors ran, Section 5.2;
        True for runs outside the paper's experiments), ``variant`` the
        settings beyond scale in which the run departs from its paper
        experiment (:func:`variant`).
    """
    cfg = result["config"]
    experiment = experiment_name(cfg["name"])
    paper = EXPERIMENTS.get(experiment)
    keep = cfg.get("prune_keep")
    scale = result["scale"]
    settings = {
        "experiment": experiment,
        "model": cfg["model"],
        "optimizer": result["optimizer"],
        "k": cfg["sync_period"] if result["optimizer"] == "laperm" else None,
        "p": 0.0 if keep is None else round(1 - keep, 4),
        "seed": cfg["seed"],
        "scale": scale["label"],
        "is_reduced": scale["is_reduced"],
        "epochs_run": scale["epochs_run"],
        "paper_epochs": scale["paper_epochs"],
        "train_fraction": scale["train_fraction"],
        "n_train": scale.get("n_train"),
        "precision": cfg.get("precision", "float32"),
        "kernels": cfg.get("kernels", "keras"),
        "preprocessing": cfg.get("preprocessing"),
        "paper_input": paper is None or cfg.get("preprocessing") == paper.preprocessing,
    }
    settings["variant"] = variant(settings)
    return settings


def variant(settings: dict) -> str:
    """How a run departs from its paper experiment beyond its scale: ``""`` for
    the paper's settings, else e.g. ``"cifar_standardize"`` or
    ``"cifar_standardize, mixed_bfloat16"`` (another input preprocessing, another
    precision than float32).  Tables never average runs of different variants.

    Args:
        settings: :func:`run_settings` (``paper_input``, ``preprocessing``,
            ``precision``).
    """
    parts = [] if settings["paper_input"] else [settings["preprocessing"]]
    if settings["precision"] != "float32":
        parts.append(settings["precision"])
    return ", ".join(parts)


def steps_run(n_train: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a run: :func:`laperm.config.steps_per_epoch` times epochs."""
    return steps_per_epoch(n_train, batch_size) * int(epochs)


#: How a table names a LaPerm run that stopped before its first sync: it trained as its
#: inner Adam, and its scores are of those weights synced once, by the evaluation
#: (:func:`laperm.run.evaluation.evaluate_three_ways` judges the synchronised weights).
NEVER_SYNCED = "LaPerm, no sync in training (Adam, synced once to score)"


def synced(optimizer: str, steps: int, sync_period) -> bool:
    """Whether a run is a LaPerm run in fact: at least one sync (``steps >= k``).

    A LaPerm run stopped before its first sync never reconnected anything while
    it trained: it trained as plain inner Adam (its scores are of those weights
    synced once, by the evaluation), so it never counts as LaPerm in a table
    (Section 4: the sync during training is the method).  Adam runs are True.
    """
    return optimizer != "laperm" or steps >= sync_period


def device_of(result: dict) -> str:
    """The device a run trained on: its accelerator (e.g. ``"NVIDIA H200"``) or ``"CPU"``."""
    accelerator = (result.get("hardware") or {}).get("accelerator")
    if not accelerator:
        return "unknown"
    return "CPU" if accelerator.startswith("none") else accelerator


#: The engine of records written before records named theirs: Keras's ``fit`` path.
DEFAULT_ENGINE = "fit"


def paper_experiment(config: dict) -> str | None:
    """The row of the paper's table a run belongs to: the paper's experiment with
    the same model, data, pruning and weight sharing (None if there is none)."""
    mine = (config.get("model"), config.get("dataset"), config.get("prune_keep"),
            config.get("shared_value"), config.get("shared_mask", "bernoulli"))
    for name in PAPER_ACCURACY:
        ref = EXPERIMENTS[name]
        if (ref.model, ref.dataset, ref.prune_keep, ref.shared_value, ref.shared_mask) == mine:
            return name
    return None


def load_records(root) -> pd.DataFrame:
    """One row per finished run below ``root``.

    Columns: run, experiment, model, optimizer, k, p, seed, scale, is_reduced,
    epochs_run, paper_epochs, train_fraction, n_train, n_test, paper_experiment
    (:func:`paper_experiment`), best_epoch, best_val_accuracy,
    test_accuracy_at_best_val, final_test_accuracy, best_test_accuracy_any_epoch,
    paper_accuracy, test_set, wall_time_s, accelerator, device (:func:`device_of`),
    engine (:data:`DEFAULT_ENGINE` when the record names none), batch_size,
    steps (:func:`steps_run`), synced (:func:`synced`), date, commit, and the
    last epoch's other BatchNorm evaluations (NaN where a run has none):
    final_test_accuracy_stale_bn (LaPerm, statistics left from before the
    sync) and final_test_accuracy_recalibrated_bn_adam (Adam, statistics
    re-estimated once at the end).
    """
    return pd.DataFrame([record_row(folder.name, r) for folder, r in iter_runs(root)])


def runs_records(runs: dict) -> pd.DataFrame:
    """:func:`load_records` rows of ``{label: (history, result)}`` (a page's runs or
    :func:`stored_runs`), ``run`` being the label."""
    return pd.DataFrame([record_row(label, result) for label, (_, result) in runs.items()])


def record_row(name: str, r: dict) -> dict:
    """One row of :func:`load_records`: the run ``name`` and its result record ``r``."""
    number = lambda v: float("nan") if v is None else float(v)  # noqa: E731
    settings = run_settings(r)
    steps = steps_run(r["scale"]["n_train"], r["config"]["batch_size"],
                      r["scale"]["epochs_run"])
    return {
        "run": name,
        **settings,
        "n_test": r["scale"].get("n_test"),
        "paper_experiment": paper_experiment(r["config"]),
        "best_epoch": r["best_epoch"],
        "best_val_accuracy": r["best_val_accuracy"],
        "test_accuracy_at_best_val": r["test_accuracy_at_best_val"],
        "final_test_accuracy": r["final_test_accuracy"],
        "final_test_accuracy_stale_bn": number(r.get("final_test_accuracy_stale_bn")),
        "final_test_accuracy_recalibrated_bn_adam": number(
            r.get("final_test_accuracy_recalibrated_bn_adam")),
        "best_test_accuracy_any_epoch": r.get("best_test_accuracy_any_epoch"),
        "paper_accuracy": r.get("paper_accuracy"),
        "test_set": r.get("test_set"),
        "wall_time_s": r.get("wall_time_s"),
        "accelerator": (r.get("hardware") or {}).get("accelerator"),
        "device": device_of(r),
        "engine": r.get("engine") or DEFAULT_ENGINE,
        "batch_size": r["config"]["batch_size"],
        "steps": steps,
        "synced": synced(settings["optimizer"], steps, r["config"]["sync_period"]),
        "date": r.get("date"),
        "commit": r.get("commit"),
        "snapshot_of": r.get("snapshot_of"),
    }


def latest_snapshots(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` without the older partial snapshots of a run in progress.

    A run in progress is committed as partial records (``snapshot_of`` names
    the run, e.g. ``conv2_laperm_s0_e8`` and ``…_e21``); only the snapshot with
    the most epochs of each run, source, device and engine is kept, so a table
    never lists the same run twice, and a record of one device never replaces
    one of another (the H200's ``conv2_laperm_s0`` beside the CPU's).
    """
    if records.empty or "snapshot_of" not in records:
        return records
    snap = records["snapshot_of"].notna()
    of = records.loc[snap, "snapshot_of"].str.split(" ").str[0]  # "conv2_laperm_s0 (in progress, …)"
    keys = [of] + [records.loc[snap, c] for c in ("source", "device", "engine") if c in records]
    newest = records[snap].sort_values("epochs_run").groupby(keys).tail(1)
    return pd.concat([records[~snap], newest]).sort_index()


def load_sources(folders: dict) -> pd.DataFrame:
    """:func:`load_records` of several folders, with a ``source`` column.

    Args:
        folders: ``{source label: folder}``, e.g. ``{"committed": "results"}``.
    """
    frames = [load_records(folder).assign(source=source) for source, folder in folders.items()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def unfinished_runs(root) -> list[dict]:
    """Run folders below ``root`` with a config but no result yet.

    Returns:
        ``[{"run", "epochs_done", "epochs"}]``: epochs in its history, and planned.
    """
    root = Path(root)
    out = []
    if not root.is_dir():
        return out
    for cfg_path in sorted(root.glob("**/config.json")):
        if (cfg_path.parent / "result.json").is_file():
            continue
        history = cfg_path.parent / "history.csv"
        try:
            done = len(pd.read_csv(history)) if history.is_file() else 0
            cfg = json.loads(cfg_path.read_text()).get("config", {})
        except (OSError, ValueError, pd.errors.EmptyDataError):
            done, cfg = 0, {}
        out.append({"run": cfg_path.parent.name, "epochs_done": done, "epochs": cfg.get("epochs")})
    return out


def load_histories(root) -> pd.DataFrame:
    """All per-epoch histories below ``root``, with ``run``/``optimizer`` columns."""
    frames = []
    for folder, r in iter_runs(root):
        path = folder / "history.csv"
        if path.exists():
            h = pd.read_csv(path)
            h.insert(0, "run", folder.name)
            h.insert(1, "optimizer", r["optimizer"])
            h.insert(2, "experiment", experiment_name(r["config"]["name"]))
            frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def zero_fraction(result: dict) -> float:
    """The share of kernel entries that are zero at initialisation (``p``, Section 5.4).

    Read from the run's initialisation tables (random pruning or shared-value
    masks); 0.0 for a dense run.
    """
    for key in ("pruning", "shared_value"):
        rows = (result.get("init_tables") or {}).get(key)
        if rows:
            t = pd.DataFrame(rows)
            return float(1 - t["nonzero"].sum() / t["size"].sum())
    return 0.0


def stored_runs(experiments, root) -> dict:
    """Finished records of these experiments below ``root`` (e.g. ``results/``).

    A run counts for the experiment its config names (whatever its folder is
    called), so ``conv7_k20_*`` is not a ``conv7`` run; Adam baselines count
    for their experiment.

    Returns:
        ``{folder name: (history DataFrame or None, result dict)}``.
    """
    runs = list(iter_runs(root))
    found = {}
    for name in experiments:
        for folder, result in runs:
            if (folder.name not in found
                    and run_settings(result)["experiment"] == experiment_name(name)):
                history = (pd.read_csv(folder / "history.csv")
                           if (folder / "history.csv").exists() else None)
                found[folder.name] = (history, result)
    return found


def has_three_evaluations(history: pd.DataFrame | None) -> bool:
    """Whether a run's history holds the stale-BatchNorm evaluation too."""
    return (history is not None and "test_accuracy_stale_bn" in history
            and history["test_accuracy_stale_bn"].notna().any())


def unsynced_runs(stored: dict) -> dict[str, str]:
    """The LaPerm runs of ``{folder: (history, result)}`` that stopped before their first sync.

    Such a run never reconnected anything (:func:`synced`): it is its inner
    Adam under LaPerm's name, and the paper's number does not apply to it.

    Returns:
        ``{folder: "<folder>: <steps> steps with k = <k>"}``.
    """
    out = {}
    for folder, (_, result) in stored.items():
        settings = run_settings(result)
        steps = steps_run(result["scale"]["n_train"], result["config"]["batch_size"],
                          result["scale"]["epochs_run"])
        if not synced(settings["optimizer"], steps, settings["k"]):
            out[folder] = f"{folder}: {steps} steps with k = {settings['k']}"
    return out
