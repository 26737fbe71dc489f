"""Which rows of the paper's table hold: the verdict, computed from the records.

For every row of the paper's results table (Sections 5.1-5.5 of Qiu & Suda,
2020) the LaPerm runs of that experiment are grouped by everything that makes
runs comparable (:data:`GROUP`: source, scale, input, precision, kernels,
device and engine; GPU and CPU runs are never averaged together), and each
group gets an interval and a status.  LaPerm runs that never synced are not
LaPerm runs and never enter (:func:`laperm.analysis.comparisons.only_synced`).

**The interval.**  The paper reports one number per row: one run, measured on
the 10,000 test images (Section 5; their epoch was chosen on the test set).
Our group has ``n`` seeds with test accuracies ``a_1 … a_n`` (at the epoch
chosen on validation), mean ``m`` and sample standard deviation ``s``
(:func:`seed_sd`, 0 for one seed), measured on ``N`` test images.  A single
run of the method lands around ``m`` with two sources of error:

* the spread between seeds: a new run differs from our mean by ``s`` and our
  mean from the method's by ``s / sqrt(n)``, together ``s² (1 + 1/n)``;
* the test set's sampling error, the binomial standard error of an accuracy
  ``m`` on ``N`` images, ``m (1 − m) / N`` (:func:`binomial_se`); it does not
  shrink with seeds, which all use the same test images.

The interval is ``m ± z · sqrt(s² (1 + 1/n) + m (1 − m) / N)`` with
``z = 1.96`` (:func:`half_width`, :func:`interval`): where a single run at
our settings would land 95 % of the time, to first order.  Example: one seed
of Conv2 at 78 % on 1,000 test images: ``1.96 · sqrt(0.78 · 0.22 / 1000) =
2.6`` points either side.

**The status** (:func:`status`) of a group:

* *reproduced*: at least :data:`MIN_SEEDS` seeds at the paper's settings (the
  paper's scale, input and precision) and the paper's number inside the
  interval;
* *not reproduced*: the same seeds, and the paper's number above the interval;
* *consistent (n seeds)*, *below the paper (n seeds)*, *above the paper (n
  seeds)*: the paper's number inside, above or below the interval of a group
  at the paper's scale with fewer seeds or another precision;
* *not tested at the paper's scale*: only reduced runs (fewer epochs or
  training images), or none.

:func:`verdict_table` gives one row per row of the paper: the group at the
paper's settings with the most seeds (then the most recent), else the largest
reduced run; :func:`verdict_groups` every group, side by side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from laperm.analysis.comparisons import only_synced, pair_runs
from laperm.analysis.records import DEFAULT_ENGINE, latest_snapshots
from laperm.paper import EXPERIMENTS, PAPER_ACCURACY, ROWS, TEST_IMAGES, TRAIN_IMAGES

#: z of a two-sided 95 % normal interval.
Z = 1.96

#: Seeds a row needs at the paper's settings before it can be called reproduced.
MIN_SEEDS = 3

#: The precision of the paper's runs (Keras's default, float32).
PAPER_PRECISION = "float32"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested at the paper's scale"

#: What runs must share to be seeds of one group.
GROUP = ["experiment", "source", "scale", "variant", "preprocessing", "n_train", "precision",
         "kernels", "device", "engine"]

#: The book page that holds the evidence of each section of the paper.
SECTION_PAGES = {
    "5.1": "05_1_conv7_mnist",
    "5.2": "05_2_cifar_convs",
    "5.4": "05_4_sparse",
    "5.5": "05_5_weight_agnostic",
}


def seeds_text(n: int) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} seed" + ("" if n == 1 else "s")


def consistent(n: int) -> str:
    """The status of a row whose interval holds the paper's number, on ``n`` seeds."""
    return f"consistent ({seeds_text(n)})"


def below(n: int) -> str:
    """The status of a row whose interval lies below the paper's number."""
    return f"below the paper ({seeds_text(n)})"


def above(n: int) -> str:
    """The status of a row whose interval lies above the paper's number."""
    return f"above the paper ({seeds_text(n)})"


def binomial_se(accuracy: float, n_test: int) -> float:
    """Standard error of an accuracy measured on ``n_test`` independent images:
    ``sqrt(p (1 − p) / N)`` (1.31 points for 78 % on 1,000 images)."""
    return math.sqrt(accuracy * (1 - accuracy) / n_test)


def seed_sd(values) -> float:
    """Sample standard deviation over seeds (``n − 1`` in the denominator); 0 for one seed."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def half_width(sd: float, n_seeds: int, accuracy: float, n_test: int, z: float = Z) -> float:
    """Half the interval: ``z · sqrt(sd² (1 + 1/n) + p (1 − p) / N)`` (module docstring)."""
    return z * math.sqrt(sd ** 2 * (1 + 1 / n_seeds) + binomial_se(accuracy, n_test) ** 2)


def interval(values, n_test: int, z: float = Z) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the test accuracies of a group's seeds."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    h = half_width(seed_sd(values), len(values), mean, n_test, z)
    return mean, mean - h, mean + h


def status(paper: float, low: float, high: float, n_seeds: int, paper_scale: bool,
           paper_settings: bool) -> str:
    """The status of a group (module docstring).

    Args:
        paper: the paper's accuracy.
        low, high: the group's interval (:func:`interval`); NaN when no run.
        n_seeds: seeds in the group.
        paper_scale: whether the runs are at the paper's scale (epochs and
            training images).
        paper_settings: whether they also use the paper's input and precision.
    """
    if not paper_scale or n_seeds == 0 or low != low:
        return NOT_TESTED
    firm = n_seeds >= MIN_SEEDS and paper_settings
    if low <= paper <= high:
        return REPRODUCED if firm else consistent(n_seeds)
    if paper > high:
        return NOT_REPRODUCED if firm else below(n_seeds)
    return above(n_seeds)


def evidence_page(experiment: str) -> str | None:
    """The book page with the runs behind a row (by the paper's section)."""
    section = ROWS[experiment].section.split(",")[0].strip()
    return SECTION_PAGES.get(section)


def differences(group: dict) -> str:
    """What a group's runs do otherwise than the paper: training images, scale,
    precision, kernels, input, the epoch chosen on validation (the authors chose
    on test), device and engine.

    Args:
        group: ``dataset, n_train, scale, precision, kernels, paper_input,
            preprocessing, device, engine`` of the runs.
    """
    parts = []
    full = TRAIN_IMAGES.get(group["dataset"])
    if full and group["n_train"] != full:
        parts.append(f"{group['n_train']:,.0f} of {full:,} training images")
    if group["scale"] != "paper scale":
        parts.append(str(group["scale"]).removeprefix("reduced: "))
    if group["precision"] != PAPER_PRECISION:
        parts.append(group["precision"])
    if group["kernels"] != "keras":
        parts.append(f"{group['kernels']} kernels")
    if not group["paper_input"]:
        parts.append(f"input {group['preprocessing']}")
    parts.append("epoch chosen on validation")
    engine = "" if group["engine"] == "fit" else f", {group['engine']} engine"
    parts.append(f"on {group['device']}{engine}")
    return "; ".join(parts)


def _prepared(records: pd.DataFrame) -> pd.DataFrame:
    """The synced runs of the paper's rows with the paper's input, with every
    column :data:`GROUP` needs (defaults for records older than a column)."""
    if records.empty:
        return records
    df = only_synced(records)
    defaults = {"source": "records", "device": "unknown", "engine": DEFAULT_ENGINE,
                "kernels": "keras", "variant": "", "date": None}
    df = df.assign(**{c: v for c, v in defaults.items() if c not in df})
    df = df[df["paper_input"].astype(bool)]
    return df.assign(dataset=df["experiment"].map(
        lambda e: EXPERIMENTS[e].dataset if e in EXPERIMENTS else None))


def verdict_groups(records: pd.DataFrame) -> pd.DataFrame:
    """Every group of LaPerm seeds of the paper's rows, with its interval and status.

    Args:
        records: :func:`laperm.analysis.records.load_records` (or ``load_sources``) rows;
            :func:`laperm.analysis.records.latest_snapshots` is applied here.

    Returns:
        One row per group (:data:`GROUP`) of a paper experiment: those columns,
        ``paper, n, seeds`` (their numbers), ``mean, low, high, n_test,
        images_seen, date`` (the latest), ``status, differs`` and ``adam``,
        ``adam_n`` (the group's Adam baseline by
        :func:`laperm.analysis.comparisons.pair_runs`, the mean over its seeds).
    """
    df = _prepared(latest_snapshots(records)) if len(records) else records
    if df.empty:
        return pd.DataFrame()
    pairs = pair_runs(df)
    rows = []
    lap = df[(df["optimizer"] == "laperm") & df["experiment"].isin(PAPER_ACCURACY)]
    for key, g in lap.groupby(GROUP, dropna=False, sort=False):
        group = dict(zip(GROUP, key))
        first = g.iloc[0]
        n_test = int(g["n_test"].max())
        mean, low, high = interval(g["test_accuracy_at_best_val"], n_test)
        paper = PAPER_ACCURACY[group["experiment"]]
        paper_scale = group["scale"] == "paper scale"
        settings = paper_scale and group["precision"] == PAPER_PRECISION
        adam = df.loc[sorted(set().union(
            *pairs.loc[pairs.index.intersection(g.index), "adam_index"]))]
        rows.append({
            **group, "paper": paper, "n": len(g), "seeds": sorted(g["seed"].tolist()),
            "mean": mean, "low": low, "high": high, "n_test": n_test,
            "images_seen": float((g["n_train"] * g["epochs_run"]).max()),
            "date": g["date"].dropna().max() if g["date"].notna().any() else None,
            "status": status(paper, low, high, len(g), paper_scale, settings),
            "differs": differences({**group, "dataset": first["dataset"],
                                    "paper_input": True}),
            "paper_settings": settings,
            "adam": adam["test_accuracy_at_best_val"].mean() if len(adam) else np.nan,
            "adam_n": len(adam),
        })
    return pd.DataFrame(rows)


def headline(groups: pd.DataFrame) -> pd.DataFrame:
    """The group that speaks for each row: at the paper's scale, then at its
    settings, then with the most seeds, then the most recent; a row with no
    paper-scale group takes its largest reduced group (most images seen)."""
    if groups.empty:
        return groups
    ranked = groups.assign(_scale=groups["scale"] == "paper scale",
                           _date=groups["date"].fillna(""))
    ranked = ranked.sort_values(["_scale", "paper_settings", "n", "images_seen", "_date"],
                                ascending=False, kind="stable")
    best = ranked.groupby("experiment", sort=False).head(1)
    return best.drop(columns=["_scale", "_date"]).set_index("experiment")


def paper_scale_hours(records: pd.DataFrame) -> pd.DataFrame:
    """What one paper-scale run of each model costs, from the runs that trained it.

    Per model and device: training images over wall time of all its runs
    together (evaluation included; runs that shared a machine count at the
    rate they got), and the hours one paper-scale run takes at that rate.

    Returns:
        ``model, device, images_per_s, hours`` (the fastest device first).
    """
    if records.empty or not records["wall_time_s"].notna().any():
        return pd.DataFrame(columns=["model", "device", "images_per_s", "hours"])
    df = records.dropna(subset=["wall_time_s"]).assign(
        images=records["n_train"] * records["epochs_run"],
        device=records["device"] if "device" in records else "unknown")
    rate = df.groupby(["model", "device"])[["images", "wall_time_s"]].sum()
    rate["images_per_s"] = rate["images"] / rate["wall_time_s"]
    rate = rate.reset_index()
    epochs = {cfg.model: (cfg.paper_epochs, cfg.dataset) for cfg in EXPERIMENTS.values()}
    rate["hours"] = [
        TRAIN_IMAGES[epochs[m][1]] * epochs[m][0] / ips / 3600 if m in epochs else np.nan
        for m, ips in zip(rate["model"], rate["images_per_s"])]
    return rate[["model", "device", "images_per_s", "hours"]].sort_values(
        ["model", "images_per_s"], ascending=[True, False]).reset_index(drop=True)


def _authors_side(crosscheck: dict | None) -> dict:
    """``{experiment: (mean, sd, seeds)}`` of the authors' code in a distribution record."""
    if not crosscheck:
        return {}
    out = {}
    for item in crosscheck.get("summary", []):
        if item.get("side") == "authors" and item.get("metric") == "best_test_accuracy":
            out[item["model"]] = (item["mean"], item["sd"], len(item["seeds"]))
    return out


def _why(experiment: str, row, hours: pd.DataFrame, authors: dict, model: str) -> str:
    parts = []
    if row is None:
        parts.append("no run yet")
    elif row["status"] == NOT_TESTED:
        parts.append(f"largest run: {str(row['scale']).removeprefix('reduced: ')}, "
                     f"{row['mean']:.1%} ({seeds_text(row['n'])})")
    else:
        parts.append(f"ours − paper {(row['mean'] - row['paper']) * 100:+.1f} points")
    if experiment in authors:
        mean, sd, n = authors[experiment]
        parts.append(f"the authors' own code: {mean:.1%}" + (f" ± {sd:.1%}" if n > 1 else "")
                     + f" ({seeds_text(n)}) at their notebook's settings")
    if row is None or row["status"] == NOT_TESTED:
        h = hours[hours["model"] == model] if len(hours) else hours
        if len(h):
            fastest = h.iloc[0]
            parts.append(f"one paper-scale run ≈ {fastest['hours']:.1f} h at the rate its runs "
                         f"trained on {fastest['device']}")
    return "; ".join(parts)


def verdict_table(records: pd.DataFrame, crosscheck: dict | None = None) -> pd.DataFrame:
    """One row per line of the paper's table: the headline group's statistics and status.

    Args:
        records: :func:`laperm.analysis.records.load_records` (or ``load_sources``) rows.
        crosscheck: the record of ``python -m laperm.crosscheck distribution``
            (``results/crosscheck/distribution.json``), or None.

    Returns:
        Columns ``experiment, paper, ours`` (mean over seeds), ``n`` (seeds),
        ``low, high`` (the interval), ``n_test``, ``adam``, ``adam_n``,
        ``scale, device, differs`` (what differs from the paper's settings),
        ``status, why, page`` (the book page with the evidence).
    """
    groups = verdict_groups(records)
    best = headline(groups)
    hours = paper_scale_hours(records) if len(records) else pd.DataFrame()
    authors = _authors_side(crosscheck)
    rows = []
    for experiment, paper in PAPER_ACCURACY.items():
        row = best.loc[experiment] if experiment in best.index else None
        cfg = EXPERIMENTS[experiment]
        out = {"experiment": experiment, "paper": paper, "ours": np.nan, "n": 0,
               "low": np.nan, "high": np.nan, "n_test": np.nan, "paper_n_test":
               TEST_IMAGES[cfg.dataset], "adam": np.nan, "adam_n": 0, "scale": None,
               "device": None, "differs": "", "status": NOT_TESTED}
        if row is not None:
            out.update(ours=row["mean"], n=int(row["n"]), low=row["low"], high=row["high"],
                       n_test=row["n_test"], adam=row["adam"], adam_n=int(row["adam_n"]),
                       scale=row["scale"], device=row["device"], differs=row["differs"],
                       status=row["status"])
        out["why"] = _why(experiment, row, hours, authors, cfg.model)
        out["page"] = evidence_page(experiment)
        rows.append(out)
    return pd.DataFrame(rows)


#: The statuses in the order :func:`counts` and the summaries list them.
ORDER = ("reproduced", "consistent", "above the paper", "below the paper", "not reproduced",
         "not tested")


def status_kind(status_text: str) -> str:
    """The status without its seed count: ``"consistent (1 seed)"`` -> ``"consistent"``."""
    return status_text.split(" (")[0].removesuffix(" at the paper's scale")


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many rows have each kind of status (:data:`ORDER`), zeros included."""
    kinds = table["status"].map(status_kind) if len(table) else pd.Series(dtype=str)
    return {k: int((kinds == k).sum()) for k in ORDER}


def authors_code_sentences(crosscheck: dict | None) -> list[str]:
    """One sentence per model the authors' own code was run for (Section 5.5's F1/F2):
    its mean ± sd over seeds beside the paper's number (best test accuracy, chosen
    on the test set as their notebook does), and whether the paper's number lies
    in the same interval the verdict uses (:func:`interval` on the full test set),
    worded by :func:`status` as for a row of ours at another setting (their
    notebook's), so never "reproduced"."""
    lines = []
    for model, (mean, sd, n) in _authors_side(crosscheck).items():
        paper = PAPER_ACCURACY[model]
        n_test = TEST_IMAGES[ROWS[model].dataset]
        h = half_width(sd, n, mean, n_test)
        outcome = status(paper, mean - h, mean + h, n, paper_scale=True, paper_settings=False)
        if status_kind(outcome) == "consistent":
            said = (f"the paper's {paper:.2%} lies inside its interval "
                    f"[{mean - h:.1%}, {mean + h:.1%}], so their code is consistent with the "
                    f"published number on {seeds_text(n)}")
        else:
            side = "below" if paper > mean + h else "above"
            said = (f"the paper's {paper:.2%} lies outside its interval "
                    f"[{mean - h:.1%}, {mean + h:.1%}]: their code lands {side} the "
                    f"published number too")
        lines.append(
            f"The authors' own code, run here at their notebook's settings, reaches "
            f"{mean:.1%} ± {sd * 100:.1f} points on {model.upper()} over {seeds_text(n)} "
            f"(best test accuracy, chosen on test; {(mean - paper) * 100:+.1f} points from the paper): {said}.")
    return lines


def gap_closed(records: pd.DataFrame, experiment: str, control: str) -> dict | None:
    """How much of a row's gap to the paper a control closes (F2 and its per-unit mask).

    Means over the paper-scale seeds of each (test accuracy at the epoch chosen
    on validation).

    Returns:
        ``{"paper", "ours", "control", "gap", "closed", "seeds", "control_seeds"}``
        (gap and closed in points), or None without paper-scale runs of both.
    """
    if records.empty:
        return None
    df = records[(records["optimizer"] == "laperm") & (records["scale"] == "paper scale")]
    ours, ctl = df[df["experiment"] == experiment], df[df["experiment"] == control]
    if not len(ours) or not len(ctl):
        return None
    paper = PAPER_ACCURACY[experiment]
    mean, cmean = ours["test_accuracy_at_best_val"].mean(), ctl["test_accuracy_at_best_val"].mean()
    return {"paper": paper, "ours": mean, "control": cmean, "gap": (paper - mean) * 100,
            "closed": (cmean - mean) * 100, "seeds": len(ours), "control_seeds": len(ctl)}
