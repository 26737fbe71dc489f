"""What the book's pages conclude: the verdict table and each page's findings.

* :func:`verdict_of` computes :func:`laperm.verdict.verdict_table` from
  records and the committed cross-check record (:func:`committed_verdict`:
  from the committed records), and
  :func:`show_verdict` renders it as an HTML table whose rows link to the page
  with the evidence;
* :func:`show_findings` ends a page with "What this page found": a list of
  sentences the page computed from its own results.
"""

from __future__ import annotations

import html
import json

import pandas as pd

from laperm.book.layout import results_dir

#: Background colour of each status in the verdict table.
STATUS_COLOURS = {
    "reproduced": "#d4edda",
    "not reproduced": "#f8d7da",
    "not tested at the paper's scale": "#eceff1",
}


def row_label(experiment: str) -> str:
    """The paper's name of a row: ``"Conv7"``, ``"ResNet50 (p = 30%)"``, ``"F1"``."""
    from laperm.paper import ROWS

    row = ROWS[experiment]
    if row.model == "ResNet50" and row.pruned:
        return f"ResNet50 (p = {row.pruned:.0%})"
    return row.model


def verdict_of(records: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.verdict.verdict_table` of ``records``, with the committed cross-check record."""
    from laperm.verdict import verdict_table

    path = results_dir() / "crosscheck" / "distribution.json"
    crosscheck = json.loads(path.read_text()) if path.is_file() else None
    return verdict_table(records, crosscheck)


def committed_verdict() -> pd.DataFrame:
    """The verdict from the committed records (``results/`` and ``results/crosscheck``)."""
    from laperm import records as R

    return verdict_of(R.load_records(results_dir()).assign(source="committed"))


def verdict_html(table: pd.DataFrame) -> str:
    """The verdict as an HTML table (status coloured, rows linked to their pages)."""
    pct = lambda v: "–" if v != v else f"{v:.2%}"  # noqa: E731
    head = ("<thead><tr><th>row of the paper</th><th>paper</th><th>LaPerm (ours)</th>"
            "<th>Adam</th><th>status</th><th>why</th></tr></thead>")
    body = []
    for r in table.itertuples():
        name = html.escape(row_label(r.experiment))
        if r.page:
            name = f'<a href="{r.page}.html">{name}</a>'
        ours = pct(r.ours) + (f" <small>({r.seeds} seeds)</small>" if r.seeds > 1 else "")
        colour = STATUS_COLOURS.get(r.status, "white")
        body.append(
            f"<tr><td>{name}</td><td>{pct(r.paper)}</td><td>{ours}</td><td>{pct(r.adam)}</td>"
            f'<td style="background:{colour}"><b>{html.escape(r.status)}</b></td>'
            f"<td>{html.escape(r.why)}</td></tr>")
    return (f'<table class="dataframe verdict" border="0">{head}<tbody>{"".join(body)}'
            "</tbody></table>")


def verdict_summary(table: pd.DataFrame) -> str:
    """One sentence: how many rows are reproduced, not reproduced and not tested."""
    from laperm.verdict import counts

    c = counts(table)
    names = lambda s: ", ".join(row_label(e) for e in table.loc[table["status"] == s, "experiment"])  # noqa: E731
    parts = []
    for status, n in c.items():
        if n:
            parts.append(f"**{n} {status}** ({names(status)})")
    return f"Of the paper's {len(table)} rows: " + "; ".join(parts) + "."


def verdict_legend() -> str:
    """What the three statuses mean (from the rule in :mod:`laperm.verdict`)."""
    from laperm.verdict import TOLERANCE_POINTS

    return (f"*Reproduced*: a run at the paper's settings at most {TOLERANCE_POINTS:g} point "
            "below the paper's number (or two standard errors of our test set, if more). "
            "*Not reproduced*: further below. *Not tested at the paper's scale*: only shorter "
            "runs so far (fewer epochs or training images), which say little about the final "
            "accuracy; the reason gives how far the largest run went and what a paper-scale "
            "run would cost here. Ours: test accuracy at the epoch with the best validation "
            "accuracy, on synchronised weights.")


def show_verdict(table: pd.DataFrame) -> None:
    """Display the verdict summary sentence, the table and its legend in a notebook."""
    from IPython.display import HTML, Markdown, display

    display(Markdown(verdict_summary(table)))
    display(HTML(verdict_html(table)))
    display(Markdown(verdict_legend()))


def show_findings(lines: list[str]) -> None:
    """End a page with its findings: a bullet list of computed sentences."""
    from IPython.display import Markdown, display

    text = "\n".join(f"* {line}" for line in lines) if lines else (
        "_Nothing was measured in this execution._")
    display(Markdown(text))


def run_findings(table: pd.DataFrame) -> list[str]:
    """Sentences about a page's runs, from :func:`laperm.records.results_table`.

    One sentence per run (test accuracy at the best validation epoch, its
    scale and, for LaPerm, the paper's number where there is one), then the
    gap between each LaPerm run and the Adam run of the same scale.
    """
    if table is None or not len(table):
        return []
    lines = []
    for label, r in table.iterrows():
        text = f"{label}: **{r['test acc at best val']:.2%}** test accuracy ({r['scale']}"
        if r.get("paper") == r.get("paper") and r.get("paper") is not None:
            text += f"; paper {r['paper']:.2%}"
        lines.append(text + ").")
    adam = table[table["optimizer"] == "Adam"]
    for label, r in table[table["optimizer"] != "Adam"].iterrows():
        same = adam[adam["scale"] == r["scale"]]
        if len(same):
            gap = (r["test acc at best val"] - same["test acc at best val"].iloc[0]) * 100
            lines.append(f"{label} − {same.index[0]}: {gap:+.2f} points at the same scale.")
    return lines
