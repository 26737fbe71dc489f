"""The finding box under each section page's title, and the page's findings folded away.

:func:`finding_box` writes, from the committed records (``results/``, read by
:mod:`laperm.analysis.records` and judged by :func:`laperm.analysis.verdict.verdict_table`),
one line per row of the paper's table the page holds the evidence for, e.g.
``Conv7: 99.59% [99.43, 99.74] against the paper's 99.72%, 3 seeds, 10,000 test images —
reproduced``, each linked to its row of the verdict on the Results page (whose name links
back to the page).  A page without a row of its own (:data:`PAGE_SUBJECTS`) gets a box that
says what it shows and the rows it bears on, with their verdicts, computed the same way.
:func:`show` displays the box (one short cell under each page's title);
:func:`show_findings` ends a page with what its execution found and adds the first of those
sentences to the box at the top (:func:`with_found`: a page that computes its findings, such
as Section 2's profile scores, opens with them, not only with what it shows);
:func:`show_folded` displays a page's long run-by-run findings in a collapsed element (and
adds the first to the box too).
"""

from __future__ import annotations

import html
import re

import pandas as pd

from laperm.analysis.verdict import NOT_TESTED, counts, evidence_page, seeds_text
from laperm.book import findings
from laperm.book.findings import committed_verdict
from laperm.paper import PAPER_ACCURACY, PUBLISHED_CHECKPOINTS, row_label

#: The page that holds the verdict table whose rows the boxes link to.
RESULTS_PAGE = "07_results"

#: How many of a page's execution findings its box repeats (:func:`with_found`).
BOX_FINDINGS = 3

#: The box this kernel showed (:func:`show`): its page and HTML, for :func:`show_findings`.
_shown: dict[str, str] = {}

#: What each section page without a row of its own shows, and the rows of the paper's
#: table it bears on (None: every row, as the method or its premise).
PAGE_SUBJECTS: dict[str, tuple[str, list[str] | None]] = {
    "02_weight_profiles": ("why reconnecting can train a network: the sorted weights of "
                           "trained and of initial networks follow one curve", None),
    "03_locations_vs_values": ("that training can be undone into a permutation of θ₀: the "
                               "locations of the weights carry what was learnt", None),
    "04_laperm": ("the method, step by step: an inner Adam, and every k steps a sync back to "
                  "a permutation of θ₀", None),
    "04_1_authors_code": ("the authors' own implementation beside ours: the sync bit for "
                          "bit, the training position by position, F1 and F2 over seeds",
                          ["conv7", "f1", "f2"]),
    "04_2_torch_and_jax": ("the same method in PyTorch and JAX, checked against the Keras "
                           "one", None),
    "05_3_sync_period": ("how the sync period k changes training, measured on F2", ["f2"]),
    "06_published_checkpoints": ("the authors' released networks, scored on the test sets and "
                                 "checked for the structure the paper describes",
                                 list(dict.fromkeys(PUBLISHED_CHECKPOINTS.values()))),
}


def verdict_anchor(experiment: str) -> str:
    """The id of a row of the verdict table (:func:`laperm.book.findings.verdict_html`)."""
    return f"verdict-{experiment}"


def page_rows(page: str) -> list[str]:
    """The rows of the paper's table whose evidence is on ``page``, in the paper's order."""
    return [e for e in PAPER_ACCURACY if evidence_page(e) == page]


def row_sentence(row) -> str:
    """One row of :func:`laperm.analysis.verdict.verdict_table` in a sentence (plain text).

    ``"Conv7: 99.59% [99.43, 99.74] against the paper's 99.72%, 3 seeds, 10,000 test images
    — reproduced"``; a row not run at the paper's scale says so and names its largest run.
    """
    name, paper = row_label(row["experiment"]), row["paper"]
    if row["status"] == NOT_TESTED or row["ours"] != row["ours"]:
        why = row["why"].split("; one paper-scale run")[0]
        if why.startswith("largest run"):
            why += "; a reduced run stops short of the final accuracy by construction"
        return f"{name}: the paper's {paper:.2%} — {NOT_TESTED} ({why})"
    text = (f"{name}: {row['ours']:.2%} [{row['low'] * 100:.2f}, {row['high'] * 100:.2f}] "
            f"against the paper's {paper:.2%}, {seeds_text(int(row['n']))}, "
            f"{row['n_test']:,.0f} test images — {row['status']}")
    if row["adam"] == row["adam"]:
        text += f" (Adam at the same settings: {row['adam']:.2%})"
    return text


def _line(row) -> str:
    anchor = verdict_anchor(row["experiment"])
    sentence = html.escape(row_sentence(row))
    status = html.escape(row["status"])
    sentence = sentence.replace(f"— {status}", f"— <b>{status}</b>", 1)
    return (f'<li>{sentence} <a class="verdict-link" href="{RESULTS_PAGE}.html#{anchor}">'
            "(its row in the verdict)</a></li>")


def _summary(table: pd.DataFrame) -> str:
    c = counts(table)
    parts = [f"{n} {NOT_TESTED if k == 'not tested' else k}" for k, n in c.items() if n]
    return (f"Of the paper's {len(table)} rows: " + ", ".join(parts)
            + f' (<a href="{RESULTS_PAGE}.html">the verdict</a>).')


def finding_box(page: str, verdict: pd.DataFrame) -> str:
    """The HTML of ``page``'s finding box, from ``verdict``
    (:func:`laperm.book.findings.committed_verdict`).

    A page that holds the evidence of rows of the paper's table (:func:`page_rows`) lists
    them; another names what it shows (:data:`PAGE_SUBJECTS`) and the rows it bears on.
    """
    table = verdict.set_index("experiment", drop=False)
    rows = page_rows(page)
    what, bears = PAGE_SUBJECTS.get(page, (None, None))
    if rows:
        title = "What the committed runs found"
        intro = ""
    else:
        title = "What this page shows"
        intro = f"<p>This page shows {html.escape(what or 'one part of the method')}. "
        intro += ("It bears on every row of the paper's table.</p>" if bears is None
                  else "It bears on these rows of the paper's table:</p>")
        rows = [] if bears is None else [e for e in bears if e in table.index]
    if not rows:  # every row: how many hold, with a link to the verdict
        return (f'<div class="admonition tip finding-box" id="finding">'
                f'<p class="admonition-title">{title}</p>{intro}<p>{_summary(verdict)}</p></div>')
    body = "<ul>" + "".join(_line(table.loc[e]) for e in rows) + "</ul>"
    note = ("<p><small>From this project's committed runs: mean over seeds of the test "
            "accuracy at the epoch chosen on validation, with the interval where a single "
            "run at these settings would land 95% of the time (seeds and test-set size "
            "included).</small></p>")
    return (f'<div class="admonition tip finding-box" id="finding">'
            f'<p class="admonition-title">{title}</p>{intro}{body}{note}</div>')


def display_id(page: str) -> str:
    """The Jupyter display id of ``page``'s box (:func:`show_findings` updates it)."""
    return f"finding-box-{page}"


def show(page: str) -> None:
    """Display ``page``'s :func:`finding_box`, computed from the committed records."""
    from IPython.display import HTML, display

    box = finding_box(page, committed_verdict())
    _shown.clear()
    _shown.update(page=page, html=box)
    display(HTML(box), display_id=display_id(page))


def with_found(box: str, lines: list[str], most: int = BOX_FINDINGS) -> str:
    """``box`` (:func:`finding_box`'s HTML) with the first ``most`` of ``lines`` (a page's
    findings, Markdown sentences) under "This execution found", and a link to the rest
    (the page's "What this page found" section) when there are more."""
    if not lines:
        return box
    items = "".join(f"<li>{_inline(line)}</li>" for line in lines[:most])
    more = (f' (the first {most} of {len(lines)}: <a href="#what-this-page-found">all '
            "below</a>)" if len(lines) > most else "")
    part = f"<p><b>This execution found</b>{more}:</p><ul>{items}</ul>"
    head, _, _ = box.rpartition("</div>")
    return f"{head}{part}</div>"


def show_findings(lines: list[str], empty: str = "_Nothing was measured in this execution._"
                  ) -> None:
    """End a page with its findings (:func:`laperm.book.findings.show_findings`) and put the
    first of them into the box this kernel showed at the top (:func:`with_found`), so the
    executed page opens with what it found."""
    findings.show_findings(lines, empty)
    _add_to_box(lines)


def _add_to_box(lines: list[str]) -> None:
    """Put the first of ``lines`` into the box this kernel showed (:func:`with_found`)."""
    from IPython.display import HTML, update_display

    if _shown and lines:
        update_display(HTML(with_found(_shown["html"], lines)),
                       display_id=display_id(_shown["page"]))


def _inline(text: str) -> str:
    """A findings sentence (Markdown: ``**bold**``, ```code```) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def folded(lines: list[str], what: str = "sentence") -> str:
    """``lines`` as a list inside a collapsed ``<details>`` element whose summary counts them."""
    n = len(lines)
    items = "".join(f"<li>{_inline(line)}</li>" for line in lines)
    return (f'<details class="findings"><summary>{n} {what}{"" if n == 1 else "s"}, one per '
            f"run or check (click to open)</summary><ul>{items}</ul></details>")


def show_folded(lines: list[str], empty: str = "_Nothing was measured in this execution._"
                ) -> None:
    """Display a page's findings folded (:func:`folded`), or ``empty`` (Markdown) without any,
    and put the first of them into the box at the top (:func:`with_found`), as
    :func:`show_findings` does."""
    from IPython.display import HTML, Markdown, display

    display(HTML(folded(lines)) if lines else Markdown(empty))
    _add_to_box(lines)
