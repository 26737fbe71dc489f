"""The Results page's tables and sentences, ready to show (Qiu & Suda, NeurIPS 2020, Table 1).

The numbers come from :mod:`laperm.analysis.comparisons`, :mod:`laperm.analysis.verdict` and
:mod:`laperm.analysis.speed`; this module formats them for reading (percentages,
points, ``"–"`` where there is nothing) and writes the sentences the page lists under
"What this page found".  Every function is pure: it takes the tables those modules
compute and returns a new table, a list of sentences or a sentence.

* the groups of seeds behind each row of the paper's table (:func:`groups_table`) and
  the dots of the "ours against the paper" figure
  (:func:`laperm.analysis.comparisons.paper_row_runs`);
* LaPerm against Adam (:func:`pairs_table`, :func:`headline_sentences`), and how fast
  each approaches its final accuracy (:func:`convergence_sentences`);
* the authors' own code (:func:`authors_code_table`);
* the pitfalls of the authors' material (:func:`pitfalls_table`,
  :func:`pitfalls_sentences`, :func:`longest_three_evaluations`,
  :func:`three_evaluations_sentences`, :func:`batchnorm_alike_table`,
  :func:`batchnorm_alike_sentences`, :func:`input_table`, :func:`input_sentences`,
  :func:`conv7_table`);
* the cost of a training step and what ``mixed_bfloat16`` changes
  (:func:`speedup_sentence`, :func:`precision_check_sentence`,
  :func:`paper_scale_precision_sentence`, :func:`precision_over_training_tables`,
  :func:`precision_over_training_sentences`);
* the appendix of every record (:func:`settings_display`, :func:`unfinished_sentences`,
  :func:`record_tables`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from laperm import paper
from laperm.analysis.comparisons import fmt, records_table, three_evaluations_table
from laperm.analysis.labels import short_run_label
from laperm.analysis.speed import (SPEEDUP_TARGET, precision_over_training,
                                   precision_over_training_summary)
from laperm.analysis.verdict import seeds_text
from laperm.book.tables import split_constant_columns
from laperm.crosscheck.seed_runs import distribution_table
from laperm.paper import PAPER_ACCURACY, row_label


#: What the Results page says where a table or figure has nothing to show yet (Markdown).
NOTHING_YET = {
    "pairs": "_No experiment has a LaPerm and an Adam record that can be compared yet._",
    "histories of pairs": "_No pair of runs with histories yet._",
    "cross-check": "_No cross-check record in `results/crosscheck/` yet._",
    "histories": "_No run histories yet._",
    "three evaluations": "_No committed run with BatchNorm has the three evaluations yet._",
    "BatchNorm pairs": ("_No pair of runs with both measurements yet (Adam runs record the "
                        "re-estimation at their end since it was added)._"),
    "inputs": ("_No run on another input yet: `python -m laperm.reproduce conv2 "
               "--baseline --preprocessing cifar_standardize` makes the paper-scale "
               "pair (a reduced one with `--epochs 10`)._"),
    "conv7": "_No Conv7 record yet._",
    "benchmark": ("_No CIFAR-10 benchmark record in `benchmarks/results/` yet; "
                  "`python benchmarks/bench_cifar.py` makes one._"),
    "precision pair": ("_The pair of runs is not recorded yet "
                       "(`python -m laperm.reproduce conv2 --epochs 10 --seeds 0 1 --kernels "
                       "fused --precision mixed_bfloat16`, and the same with float32)._"),
    "long precision pair": "_No Conv2 run has reached 20 epochs at both precisions yet._",
}


def _pct(value) -> str:
    return fmt(value, ".2%")


def _k(value) -> str:
    """``", k = 1200"`` for a LaPerm run's sync period, ``""`` for none (NaN)."""
    return "" if value is None or value != value else f", k = {value:.0f}"


# -- the groups behind the verdict, and the figure -------------------------------------------

def groups_table(groups: pd.DataFrame) -> pd.DataFrame:
    """Every group of LaPerm seeds behind the paper's rows, formatted (Results page).

    Args:
        groups: :func:`laperm.analysis.verdict.verdict_groups`.

    Returns:
        Eight columns, so that a group reads on one line of one table (a section page's
        most): ``row`` (the paper's name), ``trained on`` (the device, the device engine
        where used, "this build" for runs not committed, and the latest record's date),
        ``scale``, ``arithmetic`` (precision and kernels, e.g. ``"bf16, fused kernels"``),
        ``seeds``, ``mean [95% interval]``, ``test images`` and ``status`` (the paper's
        number is in the verdict above it); empty without groups.
    """
    if groups is None or not len(groups):
        return pd.DataFrame()
    where = [device + (", device engine" if engine == "device" else "")
             + ("" if source == "committed" else f", {source}")
             + (f", {str(date)[:10]}" if isinstance(date, str) else "")
             for device, engine, source, date in zip(
                 groups["device"], groups["engine"], groups["source"], groups["date"])]
    arithmetic = [("bf16" if "bfloat16" in p else p) + (", fused kernels" if k == "fused" else "")
                  for p, k in zip(groups["precision"], groups["kernels"])]
    return pd.DataFrame({
        "row": groups["experiment"].map(row_label), "trained on": where,
        "scale": groups["scale"], "arithmetic": arithmetic, "seeds": groups["n"],
        "mean [95% interval]": [f"{m:.2%} [{lo:.2%}, {hi:.2%}]" for m, lo, hi in
                                zip(groups["mean"], groups["low"], groups["high"])],
        "test images": groups["n_test"].map(lambda v: f"{v:,}"),
        "status": groups["status"],
    })


# -- LaPerm against Adam ---------------------------------------------------------------------

def pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """A table of LaPerm − Adam pairs formatted for reading.

    ``LaPerm`` and ``Adam`` as percentages, ``LaPerm − Adam (points)`` signed with
    two decimals; the columns only used for computing (``paper_input``, ``model``)
    are dropped.

    Args:
        pairs: :func:`laperm.analysis.comparisons.headline_pairs` or
            :func:`~laperm.analysis.comparisons.laperm_adam_pairs`.
    """
    if pairs is None or not len(pairs):
        return pd.DataFrame()
    diff = "LaPerm − Adam (points)"
    return pairs.drop(columns=[c for c in ("paper_input", "model") if c in pairs]).assign(
        LaPerm=pairs["LaPerm"].map(_pct), Adam=pairs["Adam"].map(_pct),
        **{diff: pairs[diff].map(lambda v: fmt(v, "+.2f"))})


def headline_sentences(headline: pd.DataFrame) -> list[str]:
    """The headline at the paper's scale in one sentence (none without such a pair).

    Args:
        headline: :func:`laperm.analysis.comparisons.headline_pairs`.
    """
    if headline is None or not len(headline):
        return []
    full = headline[headline["scale"] == "paper scale"]
    if not len(full):
        return []
    return ["At the paper's scale, LaPerm − Adam with BatchNorm treated alike: " + ", ".join(
        f"{e}{'' if v == '–' else f' ({v})'} on {d} {x:+.1f} points ({seeds_text(n)})"
        for e, v, d, x, n in zip(full["experiment"], full["variant"], full["device"],
                                 full["LaPerm − Adam (points)"], full["seeds"])) + "."]


def convergence_sentences(table: pd.DataFrame, min_epochs: int = 20) -> list[str]:
    """One sentence per pair compared over at least ``min_epochs`` epochs (the speed claim).

    Args:
        table: :func:`laperm.analysis.comparisons.convergence_table`.
        min_epochs: shorter pairs say little and get no sentence.
    """
    if table is None or not len(table):
        return []
    return [f"{row['experiment']} ({row['device']}"
            f"{'' if row['variant'] == '–' else ', ' + row['variant']}, {row['epochs']} epochs): "
            f"LaPerm reaches 90/95/99% of its final test accuracy at epochs "
            f"{row['LaPerm 90%']:.0f}/{row['LaPerm 95%']:.0f}/{row['LaPerm 99%']:.0f}, Adam at "
            f"{row['Adam 90%']:.0f}/{row['Adam 95%']:.0f}/{row['Adam 99%']:.0f}."
            for _, row in table[table["epochs"] >= min_epochs].iterrows()]


# -- the authors' own code -------------------------------------------------------------------

#: How the Results page names the sides of the cross-check record.
SIDE_NAMES = {"authors": "the authors' code", "ours": "ours", "ours_keep": "ours, keeping 4/7"}


def load_crosscheck(results_dir) -> dict | None:
    """The committed cross-check record (``<results>/crosscheck/distribution.json``), or None."""
    path = Path(results_dir) / "crosscheck" / "distribution.json"
    return json.loads(path.read_text()) if path.is_file() else None


def authors_code_table(dist: dict | None) -> pd.DataFrame:
    """The authors' code and ours over seeds beside the paper (Section 5.5, F1 and F2).

    Best test accuracy, chosen on the test set as the authors' notebook does.

    Args:
        dist: the cross-check record (:func:`load_crosscheck`); None gives an empty table.

    Returns:
        ``experiment, run by, paper, mean ± sd over seeds, seeds, mean − paper (points)``.
    """
    if not dist:
        return pd.DataFrame()
    t = distribution_table(dist)
    return pd.DataFrame({
        "experiment": t["model"], "run by": t["side"].map(SIDE_NAMES),
        "paper": [_pct(PAPER_ACCURACY[m.lower()]) for m in t["model"]],
        "mean ± sd over seeds": [f"{m:.2%} ± {sd * 100:.2f}"
                                 for m, sd in zip(t["mean"], t["sd"])],
        "seeds": [len(dist["seeds"])] * len(t),
        "mean − paper (points)": [fmt((m - PAPER_ACCURACY[k.lower()]) * 100, "+.1f")
                                  for m, k in zip(t["mean"], t["model"])],
    })


def crosscheck_note(dist: dict) -> str:
    """Which cross-check record :func:`authors_code_table` shows: its date and scale."""
    return (f"Record of {dist['date'][:10]} ({dist['scale']}); the settings of each "
            "side are on the cross-check page.")


# -- the pitfalls of the authors' material ---------------------------------------------------

_CHECK_COLUMNS = ("mean_synced_minus_unsynced", "mean_recalibrated_minus_stale")


def _with_check_columns(checks: pd.DataFrame) -> pd.DataFrame:
    return checks.assign(**{c: float("nan") for c in _CHECK_COLUMNS if c not in checks})


def _points(value) -> str:
    return fmt(value * 100, "+.1f")


def pitfalls_table(checks: pd.DataFrame) -> pd.DataFrame:
    """What each pitfall of the authors' protocol costs, per kind of run (points).

    Runs are grouped by experiment, optimizer, k and variant (never averaged over
    inputs or precisions) and scale; each column is a mean over the group's runs.

    Args:
        checks: :func:`laperm.analysis.comparisons.measurement_checks`.

    Returns:
        ``run, scale, seeds``, ``optimism of choosing on test``, ``synced − unsynced``,
        ``re-estimated − stale BatchNorm`` (``"–"`` where no run measured it).
    """
    if checks is None or not len(checks):
        return pd.DataFrame()
    checks = _with_check_columns(checks)
    variant = checks["variant"].map(lambda v: f", {v}" if v else "")
    name = checks["experiment"] + ", " + checks["optimizer"] + checks["k"].map(_k) + variant
    h = (checks.assign(name=name)
         .groupby(["name", "scale"], sort=False)
         .agg(seeds=("seed", "nunique"), epochs=("epochs", "max"),
              optimism=("optimism_of_choosing_on_test", "mean"),
              unsynced=("mean_synced_minus_unsynced", "mean"),
              stale=("mean_recalibrated_minus_stale", "mean"))
         .reset_index())
    return pd.DataFrame({
        "run": h["name"], "scale": h["scale"], "seeds": h["seeds"],
        "optimism of choosing on test": h["optimism"].map(_points),
        "synced − unsynced": h["unsynced"].map(_points),
        "re-estimated − stale BatchNorm": h["stale"].map(_points),
    })


def pitfalls_sentences(checks: pd.DataFrame, by_group: bool = False) -> list[str]:
    """The worst cost of stale BatchNorm statistics (where measured), and the optimism
    of choosing the epoch on the test set over every run.

    Args:
        checks: :func:`laperm.analysis.comparisons.measurement_checks`.
        by_group: name the worst row of :func:`pitfalls_table` (a mean over its seeds,
            the number the table beside the sentence shows) rather than the worst run.
    """
    if checks is None or not len(checks):
        return []
    checks = _with_check_columns(checks)
    found = []
    worst_stale = checks["mean_recalibrated_minus_stale"].max()
    if by_group and worst_stale == worst_stale:
        table = pitfalls_table(checks)
        stale = pd.to_numeric(table["re-estimated − stale BatchNorm"].replace("–", None))
        row = table.loc[stale.idxmax()]
        found.append(f"Stale BatchNorm statistics cost up to {stale.max():.1f} points of test "
                     f"accuracy on average over epochs ({row['run']}, {row['scale']}, mean "
                     f"of {seeds_text(int(row['seeds']))}).")
    elif worst_stale == worst_stale:
        row = checks.loc[checks["mean_recalibrated_minus_stale"].idxmax()]
        found.append(f"Stale BatchNorm statistics cost up to {worst_stale * 100:.1f} points "
                     f"of test accuracy on average over epochs ({row['experiment']}, "
                     f"{row['optimizer']}, {row['scale']}).")
    opt = checks["optimism_of_choosing_on_test"]
    found.append(f"Choosing the epoch on the test set adds {opt.mean() * 100:.2f} points on "
                 f"average (at most {opt.max() * 100:.2f}) over {len(checks)} runs.")
    return found


def longest_three_evaluations(histories: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The longest LaPerm run of each experiment that records the three evaluations.

    Args:
        histories: :func:`laperm.analysis.records.load_histories`.

    Returns:
        ``{"conv2, LaPerm: 125 epochs": that run's history}``, one per experiment
        whose LaPerm runs record the test accuracy with stale BatchNorm statistics.
    """
    longest = {}
    if histories is None or not len(histories) or "test_accuracy_stale_bn" not in histories:
        return longest
    lap = histories[(histories["optimizer"] == "laperm")
                    & histories["test_accuracy_stale_bn"].notna()]
    for experiment, g in lap.groupby("experiment"):
        run = g.groupby("run")["epoch"].max().idxmax()
        longest[f"{experiment}, LaPerm: {int(g[g['run'] == run]['epoch'].max())} epochs"] = (
            histories[histories["run"] == run])
    return longest


def three_evaluations_sentences(longest: dict[str, pd.DataFrame]) -> list[str]:
    """Re-estimated − stale BatchNorm at the first and the last epoch of each run shown.

    Args:
        longest: :func:`longest_three_evaluations`.
    """
    lines = []
    for title, h in longest.items():
        gap = three_evaluations_table(h)
        points = gap["re-estimated − stale (points)"]
        lines.append(f"{title}: re-estimated − stale BatchNorm {points.iloc[0]:+.1f} points at "
                     f"epoch {gap['epoch'].iloc[0]}, {points.iloc[-1]:+.1f} "
                     f"at epoch {gap['epoch'].iloc[-1]}.")
    return lines


def batchnorm_alike_table(alike: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of each pair with BatchNorm statistics treated alike, formatted.

    Args:
        alike: :func:`laperm.analysis.comparisons.final_epoch_batchnorm_pairs`.
    """
    if alike is None or not len(alike):
        return pd.DataFrame()
    pts = lambda v: fmt(v, "+.1f")  # noqa: E731
    return pd.DataFrame({
        "experiment": alike["experiment"], "scale": alike["scale"],
        "variant": alike["variant"], "seeds": alike["seeds"],
        "LaPerm, re-estimated": alike["LaPerm re-estimated"].map(_pct),
        "Adam, re-estimated": alike["Adam re-estimated"].map(_pct),
        "LaPerm, stale": alike["LaPerm stale"].map(_pct),
        "Adam, as trained": alike["Adam as trained"].map(_pct),
        "Adam: re-estimated − as trained (points)":
            alike["Adam: re-estimated − as trained (points)"].map(pts),
        "LaPerm − Adam, both re-estimated (points)":
            alike["LaPerm − Adam, both re-estimated (points)"].map(pts),
    })


def batchnorm_alike_sentences(alike: pd.DataFrame) -> list[str]:
    """What re-estimating Adam's statistics changes, and LaPerm − Adam both ways, per pair.

    Args:
        alike: :func:`laperm.analysis.comparisons.final_epoch_batchnorm_pairs`.
    """
    if alike is None or not len(alike):
        return []
    return [f"{row['experiment']} ({row['scale']}), last epoch: re-estimating Adam's "
            f"statistics changes its test accuracy by "
            f"{row['Adam: re-estimated − as trained (points)']:+.1f} points; LaPerm − Adam is "
            f"{row['LaPerm − Adam, both re-estimated (points)']:+.1f} points with both "
            f"re-estimated and {row['LaPerm − Adam, neither (points)']:+.1f} with neither."
            for _, row in alike.iterrows()]


def input_table(inputs: pd.DataFrame) -> pd.DataFrame:
    """Runs on another input beside the runs on the paper's input, formatted.

    Args:
        inputs: :func:`laperm.analysis.comparisons.input_comparison`.
    """
    if inputs is None or not len(inputs):
        return pd.DataFrame()

    def acc(v, name, n):
        return "–" if v != v else f"{v:.2%} ({name}, {seeds_text(n)})"

    return pd.DataFrame({
        "run": inputs["experiment"] + ", " + inputs["optimizer"] + inputs["k"].map(_k),
        "scale": inputs["scale"], "precision": inputs["precision"], "source": inputs["source"],
        "paper's input": [acc(v, name, n) for v, name, n in zip(
            inputs["accuracy_paper_input"], inputs["paper_input_name"],
            inputs["seeds_paper_input"])],
        "other input": [acc(v, name, n) for v, name, n in zip(
            inputs["accuracy"], inputs["input"], inputs["seeds"])],
        "other − paper's (points)": (inputs["difference"] * 100).map(lambda v: fmt(v, "+.1f")),
    })


def input_sentences(inputs: pd.DataFrame) -> list[str]:
    """What another input changes, one sentence per pair with both inputs.

    Args:
        inputs: :func:`laperm.analysis.comparisons.input_comparison`.
    """
    if inputs is None or not len(inputs):
        return []
    return [f"{row['experiment']}, {row['optimizer']} ({row['scale']}): "
            f"{row['input']} instead of {row['paper_input_name']} input changes test "
            f"accuracy by {row['difference'] * 100:+.1f} points."
            for _, row in inputs.dropna(subset=["difference"]).iterrows()]


def conv7_table(records: pd.DataFrame) -> pd.DataFrame:
    """Every Conv7 record at either sync period (k = 1200, the paper's; k = 20, the notebook's).

    Args:
        records: :func:`laperm.analysis.records.load_sources` rows.

    Returns:
        ``run, seed, scale, test at best val, final test, best epoch, wall time (min),
        source``; empty without a Conv7 record.
    """
    conv7 = records[records["experiment"].isin(["conv7", "conv7_k20"])] if len(records) \
        else records
    if not len(conv7):
        return pd.DataFrame()
    return pd.DataFrame({
        "run": conv7["experiment"] + ", " + conv7["optimizer"] + conv7["k"].map(_k),
        "seed": conv7["seed"], "scale": conv7["scale"],
        "test at best val": conv7["test_accuracy_at_best_val"].map(_pct),
        "final test": conv7["final_test_accuracy"].map(_pct),
        "best epoch": conv7["best_epoch"],
        "wall time (min)": (conv7["wall_time_s"] / 60).map(lambda v: fmt(v, ".0f")),
        "source": conv7["source"],
    })


# -- the cost of a step, and the precision ---------------------------------------------------

def speedup_sentence(summary: pd.DataFrame, label: str,
                     target: float = SPEEDUP_TARGET) -> str:
    """How many CIFAR-10 models the fastest way trains ``target`` times faster.

    Args:
        summary: :func:`laperm.analysis.speed.speedup_summary`.
        label: :func:`laperm.analysis.speed.speed_label` of the record.
        target: the speed-up aimed at.
    """
    met = int(summary[f"meets {target:g}x"].sum())
    return (f"Training speed here: the fastest way trains {met} of {len(summary)} CIFAR-10 "
            f"models at least {target:g}x faster than both the previous release and "
            "today's default path (over the default: "
            + ", ".join(f"{m} {r:.2f}x" for m, r in zip(summary["model"], summary["x default"]))
            + f"; {label}).")


def precision_check_sentence(check: pd.DataFrame) -> str:
    """What ``mixed_bfloat16`` moves after 10 epochs, against the spread between seeds.

    Args:
        check: :func:`laperm.analysis.speed.precision_check` (not None).
    """
    diff = check["bfloat16 - float32 (points)"].iloc[1]
    spread = check["seed spread (points)"].max()
    within = bool(check["within seed spread"].iloc[1])
    return (f"After 10 epochs, mixed_bfloat16 moves Conv2's LaPerm accuracy by {diff:+.2f} "
            f"points, {'within' if within else 'beyond'} the spread between seeds "
            f"({spread:.2f} points; reduced runs, 2 seeds each).")


def paper_scale_precision_sentence(records: pd.DataFrame) -> str:
    """Which precisions other than float32 the paper-scale runs among ``records`` use."""
    full = records[records["scale"] == "paper scale"] if len(records) else records
    low = sorted(set(full["precision"]) - {"float32"}) if len(full) else []
    return ("No paper-scale run on this page uses mixed_bfloat16." if not low else
            "Paper-scale runs on this page use " + ", ".join(low)
            + " (the appendix lists each run's precision).")


def precision_over_training_tables(records: pd.DataFrame, histories: pd.DataFrame,
                                   experiment: str = "conv2") -> dict:
    """:func:`laperm.analysis.speed.precision_over_training` of the committed runs, LaPerm and Adam.

    Returns:
        ``{"conv2, LaPerm": table or None, "conv2, Adam": table or None}``.
    """
    committed = records[records["source"] == "committed"] if len(records) else records
    return {f"{experiment}, {label}": precision_over_training(committed, histories,
                                                              experiment, opt)
            for opt, label in (("laperm", "LaPerm"), ("adam", "Adam"))}


def precision_over_training_sentences(tables: dict) -> list[str]:
    """One sentence per pair of :func:`precision_over_training_tables`: the mean difference,
    over the last epochs, and its epoch-to-epoch spread; the two runs by their short labels
    (:func:`laperm.analysis.labels.short_run_label`)."""
    lines = []
    for title, table in tables.items():
        if table is None:
            continue
        s = precision_over_training_summary(table)
        lines.append(
            f"{title}, seed {table.attrs['seed']}, epochs 1-{s['last_epoch']}: "
            f"mixed_bfloat16 − float32 {s['mean']:+.2f} points on average, "
            f"{s['mean_last_10']:+.2f} over the last {s['last']} epochs (epoch-to-epoch "
            f"sd {s['sd']:.2f} points; runs “{short_run_label(table.attrs['float32_run'])}” "
            f"and “{short_run_label(table.attrs['mixed_bfloat16_run'])}”).")
    return lines


# -- the appendix ------------------------------------------------------------------------------

def settings_display() -> pd.DataFrame:
    """:func:`laperm.paper.settings_table` with ``pruned`` and ``paper top-1`` as percentages."""
    table = paper.settings_table()
    return table.assign(pruned=table["pruned"].map("{:.0%}".format),
                        **{"paper top-1": table["paper top-1"].map("{:.2%}".format)})


def unfinished_sentences(unfinished: list[dict]) -> list[str]:
    """The runs still in progress in ``results/`` (:func:`laperm.analysis.records.unfinished_runs`)
    in one sentence; none when there is none."""
    if not unfinished:
        return []
    return ["Runs in progress in `results/` (not shown until they finish; their partial "
            "records are the rows named `…_e<epochs>`): " + ", ".join(
                f"`{u['run']}` ({u['epochs_done']} of {u['epochs']} epochs)"
                for u in unfinished) + "."]


def record_tables(records: pd.DataFrame, headings: dict[str, str],
                  metric: str = "test_accuracy_at_best_val") -> list[tuple[str, pd.DataFrame, str]]:
    """Every record, one table per source (the appendix of every record).

    Each table is :func:`laperm.analysis.comparisons.records_table` of that source's
    records, without the columns that hold one value in every row
    (:func:`laperm.book.tables.split_constant_columns`): those are said once, in the caption.

    Args:
        records: :func:`laperm.analysis.records.load_sources` rows.
        headings: ``{source: heading}``, in the order the tables are shown.
        metric: the accuracy column reported as ``ours``.

    Returns:
        ``[(heading, table, caption), ...]``: the table is empty for a source without
        records, the caption ``"Every row: ..."`` or ``""``; no part at all without records.
    """
    if not len(records):
        return []
    parts = []
    for source, heading in headings.items():
        part = records[records["source"] == source]
        if not len(part):
            parts.append((heading, pd.DataFrame(), ""))
            continue
        table, constant = split_constant_columns(records_table(part, metric))
        parts.append((heading, table, f"Every row: {constant}." if constant else ""))
    return parts


__all__ = ["NOTHING_YET", "SIDE_NAMES", "authors_code_table", "batchnorm_alike_sentences",
           "batchnorm_alike_table", "conv7_table", "convergence_sentences", "crosscheck_note",
           "fmt", "groups_table", "headline_sentences", "input_sentences", "input_table",
           "load_crosscheck", "longest_three_evaluations", "pairs_table",
           "paper_scale_precision_sentence", "pitfalls_sentences",
           "pitfalls_table", "precision_check_sentence", "precision_over_training_sentences",
           "precision_over_training_tables", "settings_display", "speedup_sentence",
           "record_tables", "three_evaluations_sentences", "unfinished_sentences"]
