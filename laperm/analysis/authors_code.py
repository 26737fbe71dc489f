"""What the comparison with the authors' own code shows (the book's page 4.1).

The cross-check (:mod:`laperm.crosscheck`) runs the authors' ``LaPerm.py``
beside :class:`laperm.LaPerm` (Qiu & Suda 2020, Section 4 and the F1/F2
experiments of Section 5.5).  This module reads what it returns, without
running anything: the tables a page shows and the sentences it concludes
with.

* the sync (:func:`sync_finding`) from :func:`laperm.crosscheck.compare_sync`;
* the training (:func:`training_runs`, :func:`label_training`, :func:`agreement_table`,
  :func:`last_sync_agreement`, :func:`training_finding`) from
  :func:`laperm.crosscheck.training_table`;
* the distribution over seeds (:func:`read_record`, :func:`record_origin`, :func:`settings_table`,
  :func:`seeds_table`, :func:`seed_runs`, :func:`distribution_findings`) from a
  ``distribution.json`` record (:func:`laperm.crosscheck.distribution`);
* the authors' files as loaded (:func:`files_sentence`, :func:`shims_table`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from laperm.analysis.verdict import interval
from laperm.paper import PAPER_ACCURACY

#: The paper's names of the models compared.
NAMES = {"f1": "F1", "f2": "F2", "conv7": "Conv7"}
#: How a page names each side of the distribution record.
SIDES = {"authors": "authors' code", "ours": "ours", "ours_keep": "ours, keeping 4/7"}
#: The MNIST test set every run of the distribution is measured on.
N_TEST_MNIST = 10000
#: What a page says when there is no distribution record.
NO_RECORD = "_No distribution record yet: run `python -m laperm.crosscheck distribution`._"


# --------------------------------------------------------------------------
# The authors' files
# --------------------------------------------------------------------------

def files_sentence(description: dict) -> str:
    """One sentence: the tf-keras version and the sha256 of each of the authors' files.

    Args:
        description: ``AuthorsCode.describe()`` (keys ``tf_keras`` and ``sha256``).
    """
    digests = ", ".join(f"`{name}` `{digest[:12]}…`"
                        for name, digest in description["sha256"].items())
    return (f"The authors' files, loaded with tf-keras {description['tf_keras']}; "
            f"sha256 of each file: {digests}.")


def shims_table(shims) -> pd.DataFrame:
    """The imports redirected in the authors' namespace (:data:`laperm.crosscheck.SHIMS`).

    Columns: their import, what it gets, why.
    """
    table = pd.DataFrame([{"name": s.name, "replacement": s.replacement, "reason": s.reason}
                          for s in shims])
    return table.rename(columns={"name": "their import", "replacement": "what it gets",
                                 "reason": "why"})


# --------------------------------------------------------------------------
# The sync
# --------------------------------------------------------------------------

def sync_finding(sync: pd.DataFrame) -> str:
    """How many of :func:`laperm.crosscheck.compare_sync`'s cases agree bit for bit."""
    same = int(sync["identical"].sum())
    return (f"**Sync**: identical bits in {same} of {len(sync)} cases "
            f"({int(sync['positions'].sum()):,} positions).")


# --------------------------------------------------------------------------
# The training
# --------------------------------------------------------------------------

def _run_label(model: str, k: int, loss: str, dropout: bool) -> str:
    label = f"{NAMES[model]}, k = {k}, {loss}"
    if model == "conv7":
        label += ", dropout" if dropout else ", no dropout"
    return label


def _when(row) -> str:
    if row["step"] == 1:
        return "after step 1"
    if row["sync"] == row["sync"]:  # not NaN
        return f"after sync {int(row['sync'])}"
    return "just before sync 1"


def training_runs(runs, models, syncs: int) -> list[dict]:
    """The comparisons of ``runs`` (e.g. :data:`laperm.crosscheck.TRAINING_RUNS`) for
    ``models``, each stopped after ``syncs`` syncs."""
    return [dict(r, syncs=syncs) for r in runs if r["model"] in models]


def label_training(training: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.crosscheck.training_table` with a ``run`` and a ``when`` column.

    ``run`` names the comparison (``"F1, k = 20, matching"``; Conv7 also says
    whether dropout was on), ``when`` the moment of the row (``"after step 1"``,
    ``"just before sync 1"``, ``"after sync 2"``).
    """
    out = training.copy()
    out["run"] = [_run_label(*values)
                  for values in out[["model", "k", "loss", "dropout"]].values]
    out["when"] = out.apply(_when, axis=1) if len(out) else []
    return out


def agreement_table(training: pd.DataFrame) -> pd.DataFrame:
    """The share of positions that agree, one row per run and one column per moment.

    Args:
        training: :func:`label_training`'s table.
    """
    return training.pivot_table(index="run", columns="when", values="agree_fraction",
                                sort=False)


def last_sync_agreement(training: pd.DataFrame) -> pd.DataFrame:
    """Each run's row after its last compared sync (index: the run), in the table's order."""
    synced = training[training["sync"].notna()]
    return synced.groupby("run", sort=False).last()  # rows are in step order


def training_finding(training: pd.DataFrame) -> str:
    """One sentence on the training comparison (:func:`label_training`'s table).

    With the matching loss and no dropout: in how many runs every position
    agrees after every sync, and the largest difference between syncs; with
    Keras's mean loss: the share of positions that agree after the last sync,
    beside the share two unrelated permutations would share by chance.
    """
    synced = training[training["sync"].notna()]
    last = last_sync_agreement(training)
    exact = synced.groupby("run", sort=False)["agree_fraction"].min() == 1.0
    exact = exact.index[exact]
    matching = last.index[last.index.str.contains("matching")
                          & ~last.index.str.endswith(", dropout")]
    before = training[(training["sync"].isna()) & (training["step"] > 1)
                      & training["run"].isin(matching)]
    between = before["max_abs_diff"].max()
    return (
        f"**Training**: with the matching loss (no dropout), all positions agree after every "
        f"compared sync in {len(set(exact) & set(matching))} of {len(matching)} runs "
        + (f"(between syncs the weights differ by at most {between:.1g}); "
           if between > 0 else "(and between syncs too); ")
        + "with Keras's mean loss, " + ", ".join(
            f"{run.split(',')[0]} {r['agree_fraction']:.2%} (chance {r['chance_fraction']:.0%})"
            for run, r in last.iterrows() if "Keras mean" in run)
        + f" of the positions agree after sync {int(synced['sync'].max())}.")


# --------------------------------------------------------------------------
# The distribution over seeds
# --------------------------------------------------------------------------

def read_record(path: str | Path) -> dict | None:
    """A JSON record such as ``results/crosscheck/distribution.json``; None when absent."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def record_origin(record: dict, trained_here: bool = False) -> str:
    """Where a ``distribution.json`` comes from.

    Args:
        record: the record.
        trained_here: whether it was made by this execution; else it is a
            committed record, named with its scale, date, machine and commit.
    """
    if trained_here:
        return f"trained in this build ({record['scale']})"
    hw = record["hardware"]
    machine = (f"a {hw['cpu_count']}-core CPU, no GPU" if hw["accelerator"].startswith("none")
               else hw["accelerator"])
    return (f"a committed record ({record['scale']}), made by "
            f"`python -m laperm.crosscheck distribution` on "
            f"{record['date'][:10]} on {machine}, commit {record['commit'][:10]}")


def settings_table(record: dict) -> pd.DataFrame:
    """The settings each side of a distribution record was run at."""
    return pd.DataFrame([{"side": SIDES.get(side, side), "setting": text}
                         for side, text in record["sides"].items()])


def seeds_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.crosscheck.distribution_table` with the paper's number beside each row.

    The sides are named as on the page (:data:`SIDES`); the column ``paper``
    comes third, after ``model`` and ``side``.
    """
    out = table.copy()
    out["side"] = out["side"].map(lambda v: SIDES.get(v, v))
    out.insert(2, "paper", [PAPER_ACCURACY[m.lower()] for m in out["model"]])
    return out


def seed_runs(record: dict) -> pd.DataFrame:
    """One row per run of a distribution record, models and sides named as on the page."""
    rows = pd.DataFrame(record["runs"])
    rows["model"] = rows["model"].map(NAMES)
    rows["side"] = rows["side"].map(lambda v: SIDES.get(v, v))
    return rows


def distribution_findings(record: dict, n_test: int = N_TEST_MNIST) -> list[str]:
    """One sentence per model (F1, F2) with both sides: each side's mean and spread.

    It also says how far the authors' own code is from the paper's number, on
    how many seeds it falls below it, and where the paper's number lies with
    respect to the 95% interval of one run of their code
    (:func:`laperm.analysis.verdict.interval`: seed spread and ``n_test`` test
    images).
    """
    summary = {(s["model"], s["side"]): s for s in record["summary"]
               if s["metric"] == "best_test_accuracy"}
    found = []
    for model in ("f1", "f2"):
        a, o = summary.get((model, "authors")), summary.get((model, "ours"))
        if not (a and o):
            continue
        paper_value = PAPER_ACCURACY[model]
        seeds_a = list(a["seeds"].values())
        _, low, high = interval(seeds_a, n_test)
        below = sum(v < paper_value for v in seeds_a)
        where = ("inside" if low <= paper_value <= high else
                 "above" if paper_value > high else "below")
        found.append(
            f"**{model.upper()}** (paper {paper_value:.2%}): the authors' code "
            f"{a['mean']:.1%} ± {a['sd']:.1%}, ours {o['mean']:.1%} ± {o['sd']:.1%} "
            f"({len(seeds_a)} seeds each); the authors' own code is "
            f"{abs(paper_value - a['mean']) * 100:.1f} points "
            f"{'below' if a['mean'] < paper_value else 'above'} the paper's "
            f"number, with {below} of its {len(seeds_a)} seeds below it (best "
            f"{max(seeds_a):.2%}). The paper's number is {where} the 95% interval "
            f"[{low:.1%}, {high:.1%}] of one run of their code (seed spread and "
            f"{n_test:,} test images, `laperm.analysis.verdict`)"
            + (": their code misses it." if where == "above" else
               ": their code falls short of it on every seed, but with this spread one "
               "run could land on it." if where == "inside" and below == len(seeds_a)
               else "."))
    return found


# --------------------------------------------------------------------------
# The committed records, for a build without the authors' code
# --------------------------------------------------------------------------

#: The committed records of ``python -m laperm.crosscheck`` a page can fall back to.
RECORDS = ("sync", "training", "distribution")


def read_records(folder: str | Path) -> dict[str, dict | None]:
    """``{"sync": ..., "training": ..., "distribution": ...}`` read from ``folder``
    (``results/crosscheck``); None for a record that is absent."""
    return {name: read_record(Path(folder) / f"{name}.json") for name in RECORDS}


def sync_tables(record: dict | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """``(the sync cases, the inputs where the two differ by design)`` of a ``sync.json``
    record, as :func:`laperm.crosscheck.compare_sync` and
    :func:`laperm.crosscheck.sync_differences` return them; ``(None, None)`` without one."""
    if not record:
        return None, None
    sync = pd.DataFrame(record["table"])
    sync["shape"] = [tuple(s) for s in sync["shape"]]
    differences = pd.DataFrame(record["differences"]) if record.get("differences") else None
    return sync, differences
