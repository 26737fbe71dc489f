"""What the book's pages conclude: the verdict table and each page's findings.

* :func:`verdict_of` computes :func:`laperm.analysis.verdict.verdict_table` from
  records and the committed cross-check record (:func:`committed_verdict`:
  from the committed records), and
  :func:`show_verdict` renders it as an HTML table whose rows link to the page
  with the evidence;
* :func:`show_findings` ends a page with "What this page found": a list of
  sentences the page computed from its own results (a Section 5 page folds it:
  :func:`laperm.book.finding_box.show_folded`); its LaPerm − Adam gaps pair runs by
  :func:`laperm.analysis.comparisons.pair_runs` (:func:`table_pairs`).
* :func:`page_findings` gathers a Section 5 page's sentences in the book's
  order (its runs, its checks, the committed runs and what they support),
  built by :func:`run_findings`, :func:`best_and_worst`,
  :func:`permutation_findings`, :func:`shared_value_findings`,
  :func:`convergence_findings` and :func:`mask_control_findings`.
"""

from __future__ import annotations

import html
import json

import pandas as pd

from laperm.analysis import records as R
from laperm.analysis.comparisons import COMPARABLE, pair_runs, results_table
from laperm.analysis.verdict import (MIN_SEEDS, PAPER_PRECISION, Z, authors_code_sentences,
                                     binomial_se, counts, gap_closed, status_kind,
                                     verdict_groups, verdict_table)
from laperm.book.layout import build_dir, results_dir
from laperm.paper import EXPERIMENTS
from laperm.paper import row_label  # noqa: F401 - the pages' name of a row

#: Background colour of each kind of status (:func:`laperm.analysis.verdict.status_kind`).
STATUS_COLOURS = {
    "reproduced": "#d4edda",
    "consistent": "#e8f4ea",
    "above the paper": "#e8f4ea",
    "below the paper": "#fdecea",
    "not reproduced": "#f8d7da",
    "not tested": "#eceff1",
}


def verdict_of(records: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.analysis.verdict.verdict_table` of ``records``, with the committed cross-check record."""
    path = results_dir() / "crosscheck" / "distribution.json"
    crosscheck = json.loads(path.read_text()) if path.is_file() else None
    return verdict_table(records, crosscheck)


def build_source(runs_profile: str) -> str:
    """The ``source`` of this build's records: ``"this build (cpu)"``."""
    return f"this build ({runs_profile})"


def source_headings(runs_profile: str) -> dict[str, str]:
    """``{source: heading}`` of a Results page's records: the committed ones, then this build's."""
    return {"committed": "**Committed runs (`results/`)**",
            build_source(runs_profile): f"**Runs of this build (profile `{runs_profile}`)**"}


def page_records(runs_profile: str) -> pd.DataFrame:
    """The records a Results page reads: the committed ones (``results/``, source
    ``"committed"``) and this build's runs of ``runs_profile`` (:func:`build_source`)."""
    return R.load_sources({"committed": results_dir(),
                           build_source(runs_profile): build_dir() / "runs" / runs_profile})


def committed_verdict() -> pd.DataFrame:
    """The verdict from the committed records (``results/`` and ``results/crosscheck``)."""
    return verdict_of(R.load_records(results_dir()).assign(source="committed"))


def verdict_html(table: pd.DataFrame) -> str:
    """The verdict as an HTML table (status coloured, rows linked to their pages).

    Columns: the paper's row and number, ours (mean over seeds and the 95 %
    interval, :mod:`laperm.analysis.verdict`), seeds, test images, Adam at the same
    settings, what differs from the paper's settings, the status and, under it, why
    (8 columns: a section page's most, ``scripts/check_pages.py``).
    """
    pct = lambda v: "–" if v != v else f"{v:.2%}"  # noqa: E731
    head = ("<thead><tr><th>row of the paper</th><th>paper</th><th>LaPerm (ours): mean "
            "[95% interval]</th><th>seeds</th><th>test images (paper)</th><th>Adam (ours)</th>"
            "<th>differs from the paper</th><th>status (and why)</th></tr></thead>")
    body = []
    for r in table.itertuples():
        name = html.escape(row_label(r.experiment))
        if r.page:
            name = f'<a href="{r.page}.html">{name}</a>'
        ours = "–" if r.ours != r.ours else f"{r.ours:.2%} [{r.low:.2%}, {r.high:.2%}]"
        n_test = ("–" if r.n_test != r.n_test else f"{r.n_test:,.0f}") + f" ({r.paper_n_test:,})"
        adam = pct(r.adam) + (f" <small>({r.adam_n} seed{'s' * (r.adam_n > 1)})</small>"
                              if r.adam_n else "")
        colour = STATUS_COLOURS.get(status_kind(r.status), "white")
        body.append(  # the id: the anchor of the row's link from its page's finding box
            f'<tr><td id="verdict-{html.escape(r.experiment)}">{name}</td><td>{pct(r.paper)}</td>'
            f"<td>{ours}</td><td>{r.n}</td>"
            f"<td>{n_test}</td><td>{adam}</td><td>{html.escape(r.differs or '–')}</td>"
            f'<td style="background:{colour}"><b>{html.escape(r.status)}</b>'
            f"<br><small>{html.escape(r.why)}</small></td></tr>")  # 8 columns: the page's width
    return (f'<table class="dataframe verdict" border="0">{head}<tbody>{"".join(body)}'
            "</tbody></table>")


def verdict_summary(table: pd.DataFrame) -> str:
    """One sentence: how many rows have each kind of status, and which."""
    kinds = table["status"].map(status_kind) if len(table) else pd.Series(dtype=str)
    parts = []
    for kind, n in counts(table).items():
        if n:
            names = ", ".join(row_label(e) + (f" ({s.split(' (', 1)[1]}" if " (" in s else "")
                              for e, s in zip(table.loc[kinds == kind, "experiment"],
                                              table.loc[kinds == kind, "status"]))
            label = "not tested at the paper's scale" if kind == "not tested" else kind
            parts.append(f"**{n} {label}** ({names})")
    return f"Of the paper's {len(table)} rows: " + "; ".join(parts) + "."


def verdict_legend() -> str:
    """What the statuses and the interval mean (from the rules in :mod:`laperm.analysis.verdict`)."""
    return (f"*Ours*: the mean over seeds of the test accuracy at the epoch with the best "
            f"validation accuracy, on synchronised weights, with an interval of ±{Z:g} times "
            "the error of a single run: the spread between seeds combined with the test set's "
            f"binomial standard error ({binomial_se(0.78, 1000) * 100:.1f} points at 78% on "
            f"1,000 images, {binomial_se(0.82, 10_000) * 100:.1f} at 82% on 10,000). Runs on different devices, precisions or kernels are never averaged; "
            "the row shows the group at the paper's settings with the most seeds, all groups "
            "are on the Results page. "
            f"*Reproduced*: at least {MIN_SEEDS} seeds at the paper's scale, input and "
            f"precision ({PAPER_PRECISION}), and the paper's number inside the interval. *Not "
            "reproduced*: the same, with the paper's number above it. *Consistent*, *below* or "
            "*above the paper (n seeds)*: the paper's number inside, above or below the "
            f"interval of fewer than {MIN_SEEDS} seeds, or of runs at another precision. *Not "
            "tested at the paper's scale*: only shorter runs (fewer epochs or training images), "
            "which say little about the final accuracy; *why* gives the largest run and what a "
            "paper-scale run would cost at the rate this project's runs trained. *Differs*: "
            "how the runs depart from the paper's protocol (the authors trained on every "
            "training image and chose the epoch on the test set).")


def show_verdict(table: pd.DataFrame) -> None:
    """Display the verdict summary sentence, the table and its legend in a notebook."""
    from IPython.display import HTML, Markdown, display

    display(Markdown(verdict_summary(table)))
    display(HTML(verdict_html(table)))
    display(Markdown(verdict_legend()))


def show_findings(lines: list[str],
                  empty: str = "_Nothing was measured in this execution._") -> None:
    """End a page with its findings: a bullet list of computed sentences (``empty`` without any)."""
    from IPython.display import Markdown, display

    text = "\n".join(f"* {line}" for line in lines) if lines else empty
    display(Markdown(text))


def table_pairs(table: pd.DataFrame, runs: dict | None = None) -> pd.DataFrame:
    """:func:`laperm.analysis.comparisons.pair_runs` of the runs of a
    :func:`~laperm.analysis.comparisons.results_table`, seed by seed.

    The table gives each run's row of the paper's table, optimizer, scale and seed;
    ``runs`` (the ``{label: (history, result)}`` the table was made of), where given,
    adds what else must agree (input, training images, precision, kernels, device,
    engine).
    """
    optimizer = table["optimizer"].map({"Adam": "adam", "LaPerm (inner Adam)": "laperm"})
    frame = pd.DataFrame({
        "run": table.index, "experiment": table["paper row"],
        "paper_experiment": table["paper row"], "seed": table["seed"],
        "scale": table["scale"], "optimizer": optimizer.fillna("laperm"),
        "synced": optimizer.notna(),  # "LaPerm, never synced": no pair
        "test_accuracy_at_best_val": table["test acc at best val"]}, index=table.index)
    usable = {k: v for k, v in (runs or {}).items()
              if k in table.index and isinstance(v, tuple) and len(v) == 2
              and isinstance(v[1], dict)}
    if usable and len(usable) == len(table):
        extra = [c for c in COMPARABLE if c not in ("source", "scale")]
        frame = frame.join(R.runs_records(usable).set_index("run")[extra])
    return pair_runs(frame.reset_index(drop=True), by_seed=True)


def run_findings(table: pd.DataFrame, runs: dict | None = None) -> list[str]:
    """Sentences about a page's runs, from :func:`laperm.analysis.comparisons.results_table`.

    One sentence per run (test accuracy at the best validation epoch, its
    scale and, for LaPerm, the paper's number where there is one), then the
    gap between each LaPerm run and its Adam baseline of the same seed
    (:func:`table_pairs`: :func:`laperm.analysis.comparisons.pair_runs`, the
    rule every page pairs by; none for a LaPerm run that never synced).
    """
    if table is None or not len(table):
        return []
    lines = []
    for label, r in table.iterrows():
        text = f"{label}: **{r['test acc at best val']:.2%}** test accuracy ({r['scale']}"
        if r.get("paper") == r.get("paper") and r.get("paper") is not None:
            text += f"; paper {r['paper']:.2%}"
        lines.append(text + ").")
    for _, p in table_pairs(table, runs).iterrows():
        adam = (p["adam_runs"][0] if len(p["adam_runs"]) == 1
                else "the mean of " + ", ".join(p["adam_runs"]))
        lines.append(f"{p['run']} − {adam}: {p['LaPerm − Adam (points)']:+.2f} points at the "
                     "same scale and seed.")
    return lines


def readme_title(table: pd.DataFrame) -> str:
    """The README's first line: what holds, from the verdict (kept equal by a test)."""
    kinds = table["status"].map(status_kind)
    c = counts(table)
    parts = [f"{c['reproduced']} of {len(table)} rows reproduced ({MIN_SEEDS} seeds needed)"]
    for kind in ("consistent", "above the paper", "below the paper", "not reproduced"):
        if c[kind]:
            names = ", ".join(row_label(e) for e in table.loc[kinds == kind, "experiment"])
            parts.append(f"{names} {kind}" + (f" on fewer than {MIN_SEEDS} seeds or another "
                                                "precision" if kind != "not reproduced" else ""))
    if c["not tested"]:
        parts.append(f"{c['not tested']} not yet run at the paper's scale")
    return ("# LaPerm companion: *Train-by-Reconnect* (Qiu & Suda, NeurIPS 2020) re-run: "
            + "; ".join(parts))


def page_findings(table: pd.DataFrame | None = None, *, checks=(), stored: dict | None = None,
                  committed: dict | None = None, runs: dict | None = None) -> list[str]:
    """The sentences of a Section 5 page's "What this page found", in the book's order.

    Args:
        table: :func:`laperm.analysis.comparisons.results_table` of the page's
            runs (:func:`run_findings`), or None to leave them out.
        checks: sentences about the page's own runs (e.g. its permutation checks).
        stored: ``{folder: (history, result)}`` of the committed runs shown
            (:func:`laperm.book.show_stored_runs`): their :func:`run_findings`,
            each prefixed ``"Committed: "``.
        committed: ``{topic: sentences}`` about the committed records, each
            prefixed ``"Committed, <topic>: "`` (no prefix for topic None).
        runs: the ``{label: (history, result)}`` ``table`` was made of: its pairs
            then also agree on input, precision, kernels and device (:func:`table_pairs`).
    """
    lines = run_findings(table, runs) + list(checks)
    if stored:
        lines += [f"Committed: {line}"
                  for line in run_findings(results_table(stored), stored)]
    for topic, sentences in (committed or {}).items():
        lines += [line if topic is None else f"Committed, {topic}: {line}" for line in sentences]
    return lines


def best_and_worst(table: pd.DataFrame, by: str = "k") -> list[str]:
    """One sentence: the LaPerm runs with the best and the worst test accuracy (Section 5.3).

    Args:
        table: :func:`laperm.analysis.comparisons.results_table` with one Adam row.
        by: the column that tells the LaPerm runs apart (the sync period ``k``).

    Returns:
        ``["Best k here: 10 (97.00%); worst: k = 250 (95.00%); Adam 97.50% (<scale>)."]``,
        or ``[]`` without a LaPerm run. Where the table counts ``syncs``, a run that never
        synced is no candidate for best or worst (it is Adam projected once onto the
        permutations of θ0): the sentence names it apart.
    """
    lap = table[table["optimizer"] != "Adam"].sort_values(by)
    if not len(lap):
        return []
    acc = "test acc at best val"
    adam = table[table["optimizer"] == "Adam"].iloc[0]
    never = lap[lap["syncs"] == 0] if "syncs" in lap.columns else lap.iloc[:0]
    lap = lap.drop(index=never.index)
    apart = (f"; {', '.join(f'{by} = {v:.0f}' for v in never[by])} never synced in "
             "this run" if len(never) else "")
    if len(lap) == 0:
        return [f"No LaPerm run synced here{apart.replace('; ', ' (', 1)}); "
                f"Adam {adam[acc]:.2%} ({adam['scale']})."]
    best, worst = lap.loc[lap[acc].idxmax()], lap.loc[lap[acc].idxmin()]
    if len(lap) == 1:
        return [f"Only {by} = {best[by]:.0f} synced here ({best[acc]:.2%}){apart}; "
                f"Adam {adam[acc]:.2%} ({adam['scale']})."]
    return [f"Best {by} here: {best[by]:.0f} ({best[acc]:.2%}); worst: {by} = {worst[by]:.0f} "
            f"({worst[acc]:.2%}){apart}; Adam {adam[acc]:.2%} ({adam['scale']})."]


def permutation_findings(checks: pd.DataFrame, configs: dict) -> list[str]:
    """A sentence per LaPerm run of :func:`laperm.analysis.weights.permutation_checks` (Section 5.1).

    Args:
        checks: the checks, indexed by run label.
        configs: ``{label: ExperimentConfig}``; the LaPerm ones get a sentence.
    """
    return [f"{label}: every permuted variable is a permutation of θ0; "
            f"{checks.loc[label, 'share of weights that moved']:.1%} of the weights moved."
            for label, cfg in configs.items() if cfg.optimizer == "laperm"]


def convergence_findings(speed: pd.DataFrame, fraction: str = "99%") -> list[str]:
    """A sentence per row of :func:`laperm.analysis.comparisons.convergence_table`:
    the epoch at which each side reaches ``fraction`` of its final test accuracy."""
    return [f"{r['experiment']} ({r['device']}, {r['epochs']} epochs, {r['seeds']} seed(s)) "
            f"reaches {fraction} of its final test accuracy at epoch "
            f"{r[f'LaPerm {fraction}']:.1f} under LaPerm and {r[f'Adam {fraction}']:.1f} under Adam."
            for _, r in speed.iterrows()]


def verdict_group_table(records: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The verdict's groups of one experiment (:func:`laperm.analysis.verdict.verdict_groups`),
    as the page shows them: device, scale, seeds, mean [95% interval], test images, paper,
    status, date."""
    groups = verdict_groups(records)
    groups = groups[groups["experiment"] == experiment]
    k = EXPERIMENTS[experiment].sync_period
    return pd.DataFrame({
        "device": groups["device"], "scale": groups["scale"], "seeds": groups["n"],
        f"LaPerm (k = {k}), mean [95% interval]": [
            f"{m:.2%} [{lo:.2%}, {hi:.2%}]"
            for m, lo, hi in zip(groups["mean"], groups["low"], groups["high"])],
        "test images": groups["n_test"], "paper": groups["paper"].map("{:.2%}".format),
        "status": groups["status"], "date": groups["date"].str[:10],
    })


def mask_control_findings(records: pd.DataFrame, experiment: str = "f2",
                          control: str = "f2_per_unit") -> list[str]:
    """What a control closes of a row's gap, and what the authors' code scored (Section 5.5).

    A sentence from :func:`laperm.analysis.verdict.gap_closed` (committed
    paper-scale runs of ``experiment`` and ``control``), then
    :func:`laperm.analysis.verdict.authors_code_sentences` of the committed
    cross-check record (``results/crosscheck/distribution.json``) when there is one.
    """
    sentences = []
    closed = gap_closed(records, experiment, control)
    if closed:
        sentences.append(
            f"Committed paper-scale runs: the per-unit mask closes {closed['closed']:.0f} of the "
            f"{closed['gap']:.0f} points between our F2 ({closed['ours']:.1%}, {closed['seeds']} "
            f"seeds) and the paper ({closed['paper']:.2%}); the rest is not explained by the "
            "output layer's mask.")
    path = results_dir() / "crosscheck" / "distribution.json"
    if path.is_file():
        sentences += authors_code_sentences(json.loads(path.read_text()))
    return sentences



def shared_value_findings(configs: dict) -> list[str]:
    """The sentence of :func:`laperm.analysis.weights.kernel_values_table`'s check (Section 5.5):
    every LaPerm kernel still holds exactly {0, v}, and how many runs were checked."""
    n = sum(cfg.optimizer == "laperm" for cfg in configs.values())
    return ["Every LaPerm kernel still holds exactly {0, v} with its initial number of "
            f"non-zeros ({n} runs checked above)."]
