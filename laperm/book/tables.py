"""How the Results pages show what they computed: plain HTML tables and computed sentences.

* :func:`frame_html` / :func:`show_frame`: a table already formatted for reading
  (strings such as ``"78.21%"``), without its index, styled as the book's tables;
  an empty table shows a note instead (or nothing);
* :func:`show_titled_tables`: several such tables, each under its heading;
* what every section page's table keeps to (issue 27): at most :data:`MAX_COLUMNS` columns
  (a wider table is shown as several, :func:`column_chunks`; page 7.1 keeps its tables
  whole), numbers without trailing zeros (:func:`short_float`), the reader's words
  (:func:`reader_words`), and per table the formats a reader reads
  (:func:`three_evaluations_display`, :func:`precision_check_display`,
  :func:`speedup_display`);
* :func:`split_constant_columns`: the columns with one value in every row, said once;
* :func:`show_sentences`: display computed sentences and hand them back, so that a
  page can also list them under "What this page found"
  (:func:`laperm.book.findings.show_findings`).
"""

from __future__ import annotations

import pandas as pd

from laperm.analysis.labels import settings_label

#: The most columns a table of a section page has (row labels counted); wider tables are
#: shown as several (:func:`column_chunks`); page 7.1 (All records) keeps its tables whole.
MAX_COLUMNS = 8


#: The accuracy columns of a run table (:func:`laperm.analysis.comparisons.results_table`).
_PERCENT_COLUMNS = ("best val acc", "test acc at best val", "final test acc",
                    "best test acc, any epoch", "paper")

#: How a run table's numeric columns are written (:func:`laperm.book.page.show_table`).
COLUMN_FORMATS = {**{c: "{:.2%}" for c in _PERCENT_COLUMNS},
                  "p": "{:.0%}", "k": "{:.0f}", "syncs": "{:.0f}", "wall time (s)": "{:.0f}"}


def _formatted(column: str, value) -> str:
    if value is None or value != value:
        return "—"
    spec = COLUMN_FORMATS.get(column) or ("{:.6g}" if isinstance(value, float) else None)
    try:  # float32 values read back as floats would show all their digits
        return spec.format(value) if spec else str(value)
    except (ValueError, TypeError):
        return str(value)


def split_constant_columns(df):
    """``(df without its constant columns, "column = value; ..." of those columns)``.

    A column with one value in every row (of a table of several rows) says
    nothing per row; it is shown once, as the table's caption, so tables keep
    only the columns a reader needs and fit the page.
    """
    if len(df) < 2:
        return df, ""
    constant = [c for c in df.columns if df[c].astype(str).nunique(dropna=False) == 1]
    if len(constant) == len(df.columns):  # rows alike in every column: the table as it is
        return df, ""
    caption = "; ".join(f"{c}: {_formatted(c, df[c].iloc[0])}" for c in constant
                        if _formatted(c, df[c].iloc[0]) not in ("—", "–"))  # empty: says nothing
    return df.drop(columns=constant), caption


def column_chunks(df: pd.DataFrame, max_columns: int | None = MAX_COLUMNS,
                  keys: int = 1) -> list[pd.DataFrame]:
    """``df`` as tables of at most ``max_columns`` columns, each starting with the first
    ``keys`` columns (what names a row), the others in order; ``[df]`` when it fits or
    ``max_columns`` is None.  Nothing is left out: a wide table becomes two or more."""
    if max_columns is None or len(df.columns) <= max_columns:
        return [df]
    key, rest = list(df.columns[:keys]), list(df.columns[keys:])
    most = max(1, max_columns - len(key))
    size = -(-len(rest) // -(-len(rest) // most))  # as few tables as fit, of even widths
    return [df[key + rest[i:i + size]] for i in range(0, len(rest), size)]


def short_float(value: float) -> str:
    """A number as a reader reads it: at most 4 significant digits, no trailing zeros
    (``18.3`` not ``18.3000``, ``0.001`` not ``0.0000``), thousands grouped."""
    if value != value:
        return "NaN"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def frame_html(df: pd.DataFrame, na_rep: str = "NaN") -> str:
    """``df`` as the book's HTML table: no index, class ``dataframe``, no border, numbers
    written by :func:`short_float`."""
    return df.to_html(index=False, classes="dataframe", border=0, na_rep=na_rep,
                      float_format=short_float)


def three_evaluations_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.analysis.comparisons.three_evaluations_table` as strings a reader
    reads: accuracies as percentages with 2 decimals, the gap in points with 2 decimals
    and a sign, the learning rate to 2 significant digits (``1e-05``, never ``0.0000``)."""
    out = table.copy()
    for column in ("re-estimated", "stale BatchNorm", "unsynchronised"):
        if column in out:
            out[column] = out[column].map(lambda v: "—" if v is None or v != v else f"{v:.2%}")
    gap = "re-estimated − stale (points)"
    if gap in out:
        out[gap] = out[gap].map(lambda v: "—" if v != v else f"{v:+.2f}")
    if "learning rate" in out:
        out["learning rate"] = out["learning rate"].map(
            lambda v: "—" if v is None or v != v else f"{v:.2g}")
    return out


def reader_words(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the project's words for a reader: a ``variant`` column (how runs
    depart from their paper experiment, :func:`laperm.analysis.records.variant`) becomes
    ``settings``, its values in words (``"cifar_standardize, mixed_bfloat16"`` ->
    ``"standardised input, bf16"``, ``""`` -> ``"paper's"``)."""
    if "variant" not in df.columns:
        return df
    return df.assign(variant=df["variant"].map(
        lambda v: settings_label(v) if isinstance(v, str) else v)).rename(
        columns={"variant": "settings"})


def show_frame(df: pd.DataFrame | None, empty: str | None = None, na_rep: str = "NaN",
               max_columns: int | None = MAX_COLUMNS) -> None:
    """Display ``df`` with :func:`frame_html` (yes/no for True/False), or ``empty`` (Markdown)
    when it has no rows.

    Args:
        df: the table (None counts as empty).
        empty: the note shown instead of an empty table (nothing when None).
        na_rep: how a missing value is written.
        max_columns: a wider table is shown as several, each repeating the first column
            (:func:`column_chunks`), after its constant columns are said once above it
            (:func:`split_constant_columns`); None: whole, every column (page 7.1's full
            tables).
    """
    from IPython.display import HTML, Markdown, display

    if df is None or not len(df):
        if empty:
            display(Markdown(empty))
        return
    df = yes_no_columns(df)
    if max_columns is not None:
        df, constant = split_constant_columns(df)
        if constant:
            display(Markdown(f"All rows: {constant}."))
    for chunk in column_chunks(reader_words(df), max_columns):
        display(HTML(frame_html(chunk, na_rep)))


def show_sentences(lines: list[str]) -> list[str]:
    """Display each sentence as a paragraph and return them (for the page's findings)."""
    from IPython.display import Markdown, display

    for line in lines:
        display(Markdown(line))
    return list(lines)


def show_titled_tables(parts, empty: str | None = None, none: str = "_none_",
                       na_rep: str = "NaN", max_columns: int | None = MAX_COLUMNS) -> None:
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
        show_frame(table, empty=none, na_rep=na_rep, max_columns=max_columns)
        if len(table) and caption:
            display(Markdown(caption))


def _yes_no(value) -> str:
    return "—" if value is None or value != value else ("yes" if value else "no")


def yes_no_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its True/False columns written yes/no (a reader's words)."""
    return df.assign(**{c: df[c].map(_yes_no) for c in df.columns if df[c].dtype == bool})


def precision_check_display(check: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.analysis.speed.precision_check` to read: the mean test accuracy as a
    percentage with 2 decimals, the spreads and the difference in points with 2 decimals
    (the difference signed), whether it is within the seeds' spread as yes/no."""
    out = check.copy()
    out["mean"] = out["mean"].map(lambda v: f"{v:.2%}")
    out["seed spread (points)"] = out["seed spread (points)"].map(lambda v: f"{v:.2f}")
    diff = "bfloat16 - float32 (points)"
    if diff in out:
        out[diff] = out[diff].map(lambda v: "—" if v is None or v != v else f"{v:+.2f}")
        out = out.rename(columns={diff: "bfloat16 − float32 (points)"})
    if "within seed spread" in out:
        out["within seed spread"] = out["within seed spread"].map(_yes_no)
    return out


def speedup_display(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.analysis.speed.speedup_summary` to read: images per second rounded,
    speed-ups as ``"2.13x"``, and ``meets 2x`` as "reaches the 2x target: yes/no"."""
    out = summary.copy()
    out["images/s"] = out["images/s"].map(lambda v: f"{v:,.0f}")
    for column in ("x previous release", "x default"):
        if column in out:
            out[column] = out[column].map(lambda v: f"{v:.2f}x")
    for column in [c for c in out.columns if c.startswith("meets ")]:
        out[column] = out[column].map(_yes_no)
        out = out.rename(columns={column: f"reaches the {column.removeprefix('meets ')} target"})
    return out.rename(columns={"x previous release": "speed-up over the previous release",
                               "x default": "speed-up over the default"})
