"""The Status page's content (book section 8): what each section's last execution recorded.

Every section writes a status record when it finishes (:func:`laperm.book.finish`);
:func:`status_table` lines them up with the sections of ``_toc.yml`` and the wall
times the ``laperm`` command measured (:func:`build_status_table`: this build's),
:func:`profiles_sentence` and :func:`time_sentence` (:func:`time_note`) say what the
table shows, :func:`laperm.viz.plot_section_times`
draws the times.
"""

from __future__ import annotations

import pandas as pd

from laperm.analysis.labels import duration
from laperm.book.cache import load_cache
from laperm.book.knobs import BOOK_BUDGET_MIN
from laperm.book.layout import Project
from laperm.book.page import load_status
from laperm.book.tables import split_constant_columns
from laperm.book.sections import section_names
from laperm.run.provenance import environment_info


def _hardware(hw: dict) -> str:
    cpus = f"CPU x{hw.get('cpu_count')}"
    return cpus if hw.get("accelerator") == "none (CPU)" else f"{hw.get('accelerator')}, {cpus}"


def _commit(commit: str | None) -> str:
    commit = commit or "–"
    return commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


#: A status record written before sections recorded their skipped parts and missing inputs.
NOT_RECORDED = "not recorded"


def _listed(record: dict, key: str) -> str:
    if key not in record:
        return NOT_RECORDED
    return "; ".join(record[key]) or "–"


def status_table(records: list[dict], sections: list[str], this_section: str, profile: str,
                 kernel_times: dict | None = None) -> pd.DataFrame:
    """One row per section: its profile, overridden parameters, hardware, times, commit.

    Args:
        records: the sections' status records (:func:`laperm.book.load_status`).
        sections: the book's sections in toc order; sections with a record but not in
            the toc come after them.
        this_section: the page being executed (it has no record yet).
        profile: that page's profile.
        kernel_times: ``{section: {"wall_time_s": ...}}`` as the ``laperm`` command's
            cache measured them (kernel start included), or None.

    Returns:
        Columns ``section, profile, state`` (``executed``, ``not executed`` or ``this page``)
        and, for executed sections, ``overridden, hardware, wall time (s), with kernel start (s),
        date (UTC), commit, scale notes``, ``time against budget`` (:func:`budget_share`),
        ``parts skipped`` and ``inputs missing`` (what :mod:`laperm.book.inputs` recorded;
        ``–`` where none).
    """
    by_name = {r["section"]: r for r in records}
    kernel_times = kernel_times or {}
    rows = []
    for name in list(sections) + sorted(set(by_name) - set(sections)):
        r = by_name.get(name)
        if name == this_section:
            rows.append({"section": name, "profile": profile, "state": "this page"})
        elif r is None:
            rows.append({"section": name, "state": "not executed"})
        else:
            rows.append({
                "section": name, "profile": r["profile"], "state": "executed",
                "overridden": ", ".join(f"{k}={r['params'][k]!r}" for k in r["overridden"]) or "–",
                "hardware": _hardware(r.get("hardware", {})),
                "wall time (s)": r.get("wall_time_s"),
                "with kernel start (s)": kernel_times.get(name, {}).get("wall_time_s"),
                "date (UTC)": str(r.get("date") or r.get("started_at"))[:16].replace("T", " "),
                "commit": _commit(r.get("commit")),
                "scale notes": "; ".join(r.get("scale_notes", [])) or "–",
                "time against budget": budget_share(
                    kernel_times.get(name, {}).get("wall_time_s") or r.get("wall_time_s"),
                    r["profile"]),
                "parts skipped": _listed(r, "skipped_parts"),
                "inputs missing": _listed(r, "missing_inputs"),
            })
    return pd.DataFrame(rows)


def budget_share(seconds, profile: str) -> str:
    """A section's time as a share of its profile's budget for the whole book
    (:data:`BOOK_BUDGET_MIN`): ``"0.5 min, 5% of 10"``; ``"–"`` without a time, and
    the minutes alone for a profile without a budget (``paper``)."""
    if seconds is None or seconds != seconds:
        return "–"
    minutes = float(seconds) / 60
    budget = BOOK_BUDGET_MIN.get(profile)
    return (f"{minutes:.1f} min, {100 * minutes / budget:.0f}% of {budget}" if budget
            else f"{minutes:.1f} min (no budget)")


def build_status_table(this_section: str, profile: str,
                       project: Project | None = None) -> pd.DataFrame:
    """:func:`status_table` of this build: its status records, the sections of its
    ``_toc.yml`` and the wall times the ``laperm`` command's cache measured.

    Args:
        this_section: the page being executed.
        profile: that page's profile.
        project: the book (default :meth:`laperm.book.layout.Project.find`).
    """
    project = project or Project.find()
    return status_table(load_status(), section_names(project), this_section, profile,
                        kernel_times=load_cache(project))


#: What the Status page says where no section has a status record yet.
NO_RECORD = "_No section has a status record yet._"


def time_note(table: pd.DataFrame, profile: str) -> str:
    """:func:`time_sentence`, or :data:`NO_RECORD` when no section was executed."""
    return time_sentence(table, profile) or NO_RECORD


def profiles_sentence(table: pd.DataFrame) -> str:
    """Which profiles the build's pages were executed at (and a warning if several)."""
    used = sorted(set(table["profile"].dropna()))
    return (f"Profiles in this build: **{', '.join(used)}**"
            + (" (pages were executed at different scales!)" if len(used) > 1 else ""))


def time_sentence(table: pd.DataFrame, profile: str) -> str | None:
    """The whole book's time, kernel starts included, against the profile's budget.

    The sum is the table's own times: each executed section's time with its kernel start,
    or its wall time where the ``laperm`` command measured none (e.g. a page executed by
    papermill), which the sentence then says; this page is not counted (it is still running).
    """
    done = table[table["state"] == "executed"]
    if done.empty:
        return None
    kernel = done["with kernel start (s)"].astype(float)
    if "wall time (s)" in done:
        kernel_or_wall = kernel.fillna(done["wall time (s)"].astype(float))
    else:
        kernel_or_wall = kernel
    total = kernel_or_wall.sum() / 60
    without = int(kernel.isna().sum())
    budget = BOOK_BUDGET_MIN.get(profile)
    same = set(done["profile"]) == {profile}
    return (f"All sections, kernel starts included: **{total:.1f} min**"
            + (f" ({without} of {len(done)} without a measured kernel start: their own wall "
               "time counted)" if without else "")
            + (f" (the `{profile}` profile's budget: {budget} min on 2 CPU cores)."
               if budget and same else "."))


def scale_notes(table: pd.DataFrame) -> list[str]:
    """``"**section**: notes"`` for every section whose runs recorded scale notes."""
    if "scale notes" not in table:
        return []
    return [f"**{r['section']}**: {r['scale notes']}" for _, r in table.iterrows()
            if r.get("scale notes") not in (None, "–") and r.get("scale notes") == r.get("scale notes")]


def skipped_notes(table: pd.DataFrame) -> list[str]:
    """``"**section**: parts skipped ...; inputs missing ..."`` for every section that
    recorded a skipped part or a missing input."""
    notes = []
    for _, r in table.iterrows():
        skipped, missing = (r.get(c) for c in ("parts skipped", "inputs missing"))
        parts = [f"{label} {value}" for label, value in
                 (("skipped:", skipped), ("missing:", missing))
                 if isinstance(value, str) and value not in ("–", NOT_RECORDED)]
        if parts:
            notes.append(f"**{r['section']}**: " + "; ".join(parts))
    return notes


#: The table's columns of seconds and the names they are shown under, as durations.
TIME_COLUMNS = {"wall time (s)": "wall time", "with kernel start (s)": "with kernel start"}


def readable_times(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its columns of seconds (:data:`TIME_COLUMNS`) as durations a reader
    reads (``"45 s"``, ``"12 min"``, ``"13.6 h"``: :func:`laperm.analysis.labels.duration`;
    ``"–"`` where a section has no time)."""
    present = {c: n for c, n in TIME_COLUMNS.items() if c in table}
    times = {c: [duration(v) if v == v and v is not None else "–" for v in table[c]]
             for c in present}
    return table.assign(**times).rename(columns=present)


def show_status(table: pd.DataFrame) -> None:
    """Display the table in a notebook: the profiles, the table (constant columns said once
    above it), and each section's scale notes."""
    from IPython.display import HTML, Markdown, display

    display(Markdown(profiles_sentence(table)))
    shown, constant = split_constant_columns(readable_times(table).drop(
        columns=["scale notes", "parts skipped", "inputs missing"], errors="ignore"))
    if constant:
        display(Markdown(f"Every executed section: {constant}."))
    display(HTML(shown.astype(object).fillna("–").to_html(index=False, classes="dataframe",
                                                           border=0)))
    if notes := scale_notes(table):
        display(Markdown("Scale of each section's runs:\n\n" + "\n".join(f"* {n}" for n in notes)))
    skipped = skipped_notes(table)
    display(Markdown("Parts not run, and inputs missing:\n\n" + "\n".join(f"* {n}" for n in skipped)
                     if skipped else "Every executed section that records it ran every part, "
                     "with every input."))


def versions_table() -> pd.DataFrame:
    """This kernel's library versions, machine, accelerator and commit."""
    env = environment_info()
    versions = dict(env["versions"])
    versions.update({"machine": env["hardware"]["machine"],
                     "accelerator": env["hardware"]["accelerator"], "commit": env["commit"]})
    return pd.DataFrame(versions.items(), columns=["", "this page's kernel"]).set_index("")
