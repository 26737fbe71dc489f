"""How the Results pages show what they computed: plain HTML tables and computed sentences.

* :func:`frame_html` / :func:`show_frame`: a table already formatted for reading
  (strings such as ``"78.21%"``), without its index, styled as the book's tables;
  an empty table shows a note instead (or nothing);
* :func:`show_titled_tables`: several such tables, each under its heading;
* :func:`show_sentences`: display computed sentences and hand them back, so that a
  page can also list them under "What this page found"
  (:func:`laperm.book.findings.show_findings`).
"""

from __future__ import annotations

import pandas as pd


def frame_html(df: pd.DataFrame, na_rep: str = "NaN") -> str:
    """``df`` as the book's HTML table: no index, class ``dataframe``, no border."""
    return df.to_html(index=False, classes="dataframe", border=0, na_rep=na_rep)


def show_frame(df: pd.DataFrame | None, empty: str | None = None, na_rep: str = "NaN") -> None:
    """Display ``df`` with :func:`frame_html`, or ``empty`` (Markdown) when it has no rows.

    Args:
        df: the table (None counts as empty).
        empty: the note shown instead of an empty table (nothing when None).
        na_rep: how a missing value is written.
    """
    from IPython.display import HTML, Markdown, display

    if df is None or not len(df):
        if empty:
            display(Markdown(empty))
        return
    display(HTML(frame_html(df, na_rep)))


def show_sentences(lines: list[str]) -> list[str]:
    """Display each sentence as a paragraph and return them (for the page's findings)."""
    from IPython.display import Markdown, display

    for line in lines:
        display(Markdown(line))
    return list(lines)


def show_titled_tables(parts, empty: str | None = None, none: str = "_none_",
                       na_rep: str = "NaN") -> None:
    """Display ``(heading, table, caption)`` parts: each heading, its table (or ``none``
    when it has no rows) and its caption, or ``empty`` when there is no part.

    Args:
        parts: e.g. :func:`laperm.analysis.results.record_tables`.
        empty: the note shown when ``parts`` is empty.
        none: the note shown for a part whose table is empty.
        na_rep: how a missing value is written.
    """
    from IPython.display import Markdown, display

    if not parts and empty:
        display(Markdown(empty))
    for heading, table, caption in parts:
        display(Markdown(heading))
        show_frame(table, empty=none, na_rep=na_rep)
        if len(table) and caption:
            display(Markdown(caption))
