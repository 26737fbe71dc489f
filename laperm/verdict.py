"""Which rows of the paper's table hold: the verdict, computed from the records.

For every row of the paper's results table (Sections 5.1-5.5 of Qiu & Suda,
2020) :func:`verdict_table` takes this project's largest LaPerm run of that
experiment (:func:`laperm.records.paper_coverage`) and says one of

* **reproduced**: a paper-scale run within :data:`TOLERANCE_POINTS` points of
  the paper's number (or within two standard errors of the paper's number on
  our test set, if that is larger);
* **not reproduced**: a paper-scale run further below the paper's number;
* **not tested at the paper's scale**: only reduced runs (fewer epochs or
  training images) or none; the reason says how far the largest run went and
  what one paper-scale run would cost on the hardware that made ours.

Where the authors' own code was run beside ours (:mod:`laperm.crosscheck`),
the reason adds what their code scored at their notebook's settings.
"""

from __future__ import annotations

import math

import pandas as pd

#: A paper-scale run this many points below the paper (or less) reproduces it.
TOLERANCE_POINTS = 1.0

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested at the paper's scale"

#: The book page that holds the evidence of each section of the paper.
SECTION_PAGES = {
    "5.1": "05_1_conv7_mnist",
    "5.2": "05_2_cifar_convs",
    "5.4": "05_4_sparse",
    "5.5": "05_5_weight_agnostic",
}


def tolerance(paper: float, n_test: int | None) -> float:
    """How far below the paper a paper-scale result may be and still reproduce it.

    Args:
        paper: the paper's accuracy (a fraction).
        n_test: the number of test images our accuracy was measured on.

    Returns:
        The larger of :data:`TOLERANCE_POINTS` points and two standard errors
        of an accuracy ``paper`` measured on ``n_test`` images, as a fraction.
    """
    se = math.sqrt(paper * (1 - paper) / n_test) if n_test else 0.0
    return max(TOLERANCE_POINTS / 100, 2 * se)


def status(paper: float, ours: float, scale: str | None, n_test: int | None) -> str:
    """:data:`REPRODUCED`, :data:`NOT_REPRODUCED` or :data:`NOT_TESTED` for one row."""
    if scale != "paper scale" or ours != ours:
        return NOT_TESTED
    return REPRODUCED if ours >= paper - tolerance(paper, n_test) else NOT_REPRODUCED


def evidence_page(experiment: str) -> str | None:
    """The book page with the runs behind a row (by the paper's section)."""
    from laperm.paper import ROWS

    section = ROWS[experiment].section.split(",")[0].strip()
    return SECTION_PAGES.get(section)


def _authors_side(crosscheck: dict | None) -> dict:
    """``{experiment: (mean, sd, seeds)}`` of the authors' code in a distribution record."""
    if not crosscheck:
        return {}
    out = {}
    for item in crosscheck.get("summary", []):
        if item.get("side") == "authors" and item.get("metric") == "best_test_accuracy":
            out[item["model"]] = (item["mean"], item["sd"], len(item["seeds"]))
    return out


def _reason(row, stat: str, authors: dict) -> str:
    points = (row["laperm"] - row["paper"]) * 100
    if stat == NOT_TESTED:
        if row["laperm"] != row["laperm"]:
            text = "no run yet"
        else:
            text = f"largest run: {row['scale'].removeprefix('reduced: ')}"
        if row["adam"] != row["adam"] and row.get("adam_largest") == row.get("adam_largest"):
            # no Adam run at the LaPerm run's scale: name Adam's largest one
            text += (f"; Adam's largest run: {row['adam_largest']:.1%} at "
                     f"{str(row['adam_largest_scale']).removeprefix('reduced: ')}")
        if row["paper_scale_hours"] == row["paper_scale_hours"]:
            text += f"; paper scale ≈ {row['paper_scale_hours']:.0f} h per run here"
        return text
    seeds = f"{row['seeds']} seeds" if row["seeds"] > 1 else "1 seed"
    text = f"{points:+.1f} points ({seeds})"
    if row["experiment"] in authors:
        mean, sd, n = authors[row["experiment"]]
        text += (f"; the authors' own code: {mean:.1%}"
                 + (f" ± {sd:.1%}" if n > 1 else "") + " at their notebook's settings")
    return text


def verdict_table(records: pd.DataFrame, crosscheck: dict | None = None) -> pd.DataFrame:
    """One row per line of the paper's table: paper, ours, Adam, status and why.

    Args:
        records: :func:`laperm.records.load_records` (or ``load_sources``) rows.
        crosscheck: the record of ``python -m laperm.crosscheck distribution``
            (``results/crosscheck/distribution.json``), or None.

    Returns:
        Columns ``experiment, paper, ours, seeds, adam, scale, status, why,
        page``: ``ours`` is the mean test accuracy (at the best validation
        epoch) of the largest LaPerm run and its seeds, ``adam`` the Adam
        baseline at the same scale, ``page`` the book page with the evidence.
    """
    from laperm.records import paper_coverage

    coverage = paper_coverage(records)
    n_test = records.groupby("experiment")["n_test"].max().to_dict() if len(records) else {}
    authors = _authors_side(crosscheck)
    rows = []
    for _, row in coverage.iterrows():
        stat = status(row["paper"], row["laperm"], row["scale"], n_test.get(row["experiment"]))
        rows.append({
            "experiment": row["experiment"], "paper": row["paper"], "ours": row["laperm"],
            "seeds": int(row["seeds"]), "adam": row["adam"], "scale": row["scale"],
            "status": stat, "why": _reason(row, stat, authors),
            "page": evidence_page(row["experiment"]),
        })
    return pd.DataFrame(rows)


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many rows have each status (in the order reproduced, not, not tested)."""
    return {s: int((table["status"] == s).sum()) for s in (REPRODUCED, NOT_REPRODUCED, NOT_TESTED)}
