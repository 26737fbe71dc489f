"""The Status page's table (laperm.book.status), from status records written by hand."""

from __future__ import annotations

import pandas as pd

from laperm import viz
from laperm.book import status

RECORDS = [
    {"section": "02_a", "profile": "cpu", "params": {"epochs": 5}, "overridden": ["epochs"],
     "hardware": {"cpu_count": 2, "accelerator": "none (CPU)"}, "wall_time_s": 30.0,
     "date": "2026-12-05T07:00:00+00:00", "commit": "0123456789abcdef+dirty",
     "scale_notes": ["reduced: 5 of 45 epochs"]},
    {"section": "99_gone", "profile": "smoke", "params": {}, "overridden": [],
     "hardware": {"cpu_count": 16, "accelerator": "NVIDIA H200"}, "wall_time_s": 12.0,
     "started_at": "2026-12-04T10:00:00", "commit": None},
]


def test_one_row_per_section_in_toc_order_then_the_others():
    table = status.status_table(RECORDS, ["00_intro", "02_a", "08_status"], "08_status", "cpu",
                                kernel_times={"02_a": {"wall_time_s": 41.0}})
    assert list(table["section"]) == ["00_intro", "02_a", "08_status", "99_gone"]
    assert list(table["state"]) == ["not executed", "executed", "this page", "executed"]
    a = table.set_index("section").loc["02_a"]
    assert (a["overridden"], a["hardware"], a["commit"]) == ("epochs=5", "CPU x2", "0123456789+dirty")
    assert (a["wall time (s)"], a["with kernel start (s)"], a["date (UTC)"]) == (
        30.0, 41.0, "2026-12-05 07:00")
    gone = table.set_index("section").loc["99_gone"]
    assert (gone["hardware"], gone["commit"], gone["overridden"]) == ("NVIDIA H200, CPU x16", "–", "–")
    assert status.scale_notes(table) == ["**02_a**: reduced: 5 of 45 epochs"]


def test_sentences_say_the_profiles_and_the_time_against_the_budget():
    table = status.status_table(RECORDS, ["02_a", "08_status"], "08_status", "cpu",
                                kernel_times={"02_a": {"wall_time_s": 60.0},
                                              "99_gone": {"wall_time_s": 30.0}})
    assert status.profiles_sentence(table) == (
        "Profiles in this build: **cpu, smoke** (pages were executed at different scales!)")
    # two profiles among the executed pages: no budget is claimed
    assert status.time_sentence(table, "cpu") == "All sections, kernel starts included: **1.5 min**."
    one = table[table["section"] != "99_gone"]
    assert status.time_sentence(one, "cpu") == (
        "All sections, kernel starts included: **1.0 min** (the `cpu` profile's budget: 45 min "
        "on 2 CPU cores).")
    assert viz.plot_section_times(one) is not None
    # a section without a measured kernel start counts by its own wall time, and is named
    partial = status.status_table(RECORDS, ["02_a", "08_status"], "08_status", "cpu",
                                  kernel_times={"02_a": {"wall_time_s": 60.0}})
    assert status.time_sentence(partial, "cpu") == (  # 60 s + 99_gone's 12 s wall time
        "All sections, kernel starts included: **1.2 min** (1 of 2 without a measured kernel "
        "start: their own wall time counted).")


def test_a_build_without_records():
    table = status.status_table([], ["00_intro", "08_status"], "08_status", "smoke")
    assert status.time_sentence(table, "smoke") is None
    assert viz.plot_section_times(table) is None
    assert status.scale_notes(table) == []
    assert isinstance(status.versions_table(), pd.DataFrame)


def test_the_shown_table_has_durations_not_seconds():
    table = status.status_table(RECORDS, ["00_intro", "02_a", "08_status"], "08_status", "cpu",
                                kernel_times={"02_a": {"wall_time_s": 7300.0}})
    shown = status.readable_times(table).set_index("section")
    assert "wall time (s)" not in shown and "with kernel start (s)" not in shown
    assert (shown.loc["02_a", "wall time"], shown.loc["02_a", "with kernel start"]) == (
        "30 s", "2.0 h")
    assert shown.loc["00_intro", "wall time"] == "–"  # not executed: no time
    assert list(table["wall time (s)"])[1] == 30.0  # the data keep their seconds
