"""Pages without their inputs (issue 27, point 3): one notice at the top, what is
skipped recorded for the Status page, committed records in place of page 4.1's runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from laperm.analysis import authors_code, profile_scores
from laperm.book import inputs, layout, status
from laperm.book.page import Section

REPO = Path(__file__).resolve().parents[1]
NOTE = ("**Not executed in this build:** the authors' code was not found; to run it, "
        "install tf-keras.")


def _section():
    return Section(section="02_x", profile="smoke", params={"reference_dir": None},
                   overridden=[])


def test_notice_says_what_is_missing_how_to_get_it_and_what_replaces_it():
    a = inputs.MissingInput("the file A.h5 was not found", "download it", ("(b) part B",))
    b = inputs.MissingInput("X is off", "set x", ("(c) C", "(d) D"), instead="the record of 1 May")
    assert inputs.notice_markdown([]) is None and inputs.notice_markdown([None]) is None
    assert inputs.notice_markdown([a, None, b]) == (
        "**Not executed in this build:** the file A.h5 was not found; download it. "
        "Not measured here: (b) part B. Nothing is shown in their place, and no conclusion "
        "is drawn from them."
        "\n\n"
        "**Not executed in this build:** X is off; set x. Not measured here: (c) C and (d) D. "
        "Shown instead: the record of 1 May.")
    html = inputs.notice_html([a])
    assert html.count('class="admonition warning') == 1  # one box
    assert "<strong>Not executed in this build:</strong>" in html


def test_a_note_of_load_or_explain_splits_into_what_and_how():
    m = inputs.MissingInput.from_note(NOTE, skipped=["s"], instead="r")
    assert (m.what, m.how, m.skipped, m.instead) == (
        "the authors' code was not found", "to run it, install tf-keras", ("s",), "r")
    # rendered back, it starts with the sentence the note had
    assert inputs.notice_markdown([m]).startswith(NOTE[:-1])


def test_authors_code_not_found_is_one_note_with_how_to_get_it(tmp_path):
    """No folder at all (a reader's machine): the note page 4.1 shows in its box (the page
    itself is executed with an empty folder in test_missing_inputs_pages.py)."""
    from laperm.crosscheck import authors

    code, note = authors.load_or_explain(tmp_path / "no-authors-code")
    assert code is None
    assert note.startswith("**Not executed in this build:** the authors' code was not found; "
                           "to run it, install tf-keras")
    assert "pip install 'laperm[crosscheck]'" in note and str(tmp_path) not in note
    m = inputs.MissingInput.from_note(note, skipped=["s"])
    assert m.what == "the authors' code was not found"


def test_show_notice_records_what_is_skipped_and_shows_one_box(capsys):
    sec = _section()
    assert inputs.show_notice(sec, []) is None  # a cell ending with it shows no True/False
    assert (sec.skipped_parts, sec.missing_inputs) == ([], [])
    assert capsys.readouterr().out == ""
    a = inputs.MissingInput("A missing", "get A", ("(b)",))
    b = inputs.MissingInput("B missing", "get B", ("(b)", "(c)"))
    assert inputs.show_notice(sec, [a, b]) is None
    out = capsys.readouterr().out  # outside a kernel, display() prints
    assert "A missing" in out and "B missing" in out
    assert sec.missing_inputs == ["A missing", "B missing"]
    assert sec.skipped_parts == ["(b)", "(c)"]  # each part once
    inputs.note_skipped(sec, "(a) Conv7")
    inputs.note_skipped(sec, "(a) Conv7")
    assert sec.skipped_parts == ["(b)", "(c)", "(a) Conv7"]


def test_page_2_without_checkpoints_and_imagenet(tmp_path):
    missing = inputs.weight_profile_inputs(None, imagenet=False)
    assert [m.skipped for m in missing] == [(inputs.PROFILE_CHECKPOINT_PART,),
                                            (inputs.IMAGENET_PART,)]
    assert missing[0].what == "the authors' checkpoints Conv7.h5 and resnet50.h5 were not found"
    assert "`Conv7.h5` and `resnet50.h5`" in missing[0].how
    assert "$LAPERM_REFERENCE_DIR" in missing[0].how
    (tmp_path / "Conv7.h5").write_bytes(b"")
    only = inputs.weight_profile_inputs(tmp_path, imagenet=True)
    assert [m.what for m in only] == ["the authors' checkpoint resnet50.h5 was not found"]
    (tmp_path / "resnet50.h5").write_bytes(b"")
    assert inputs.weight_profile_inputs(tmp_path, imagenet=True) == []


def test_page_6_without_some_or_all_files():
    assert inputs.published_checkpoints_missing(["F1"], []) is None
    none = inputs.published_checkpoints_missing([], ["A.h5", "B.h5"])
    assert none.skipped == ("every table, figure and sentence of this page",)
    some = inputs.published_checkpoints_missing(["F1"], ["B.h5"])
    assert some.what == "the authors' checkpoint B.h5 was not found"
    assert some.skipped == ("for each missing file, its test accuracy against the published "
                            "one, its share of zeros and its values (F1 and F2)",)


def test_page_4_1_falls_back_to_the_committed_records():
    records = authors_code.read_records(REPO / "results" / "crosscheck")
    assert set(records) == {"sync", "training", "distribution"}
    m = inputs.authors_code_missing(NOTE, records)
    assert m.skipped == ()  # both runs have a record
    date = records["sync"]["date"][:10]
    assert m.instead.startswith("the committed records of the sync compared bit for bit "
                                f"(`python -m laperm.crosscheck sync`, {date}, ")
    none = inputs.authors_code_missing(NOTE, {"sync": None, "training": None}, True)
    assert none.instead == ""
    assert none.skipped == ("the sync compared bit for bit",
                            "the training compared position by position",
                            "the distribution over seeds re-run in this build")


def test_sync_tables_from_the_committed_record():
    record = json.loads((REPO / "results" / "crosscheck" / "sync.json").read_text())
    sync, differences = authors_code.sync_tables(record)
    assert len(sync) == len(record["table"]) and sync["shape"].iloc[0] == (784, 10)
    assert list(differences["case"]) == [d["case"] for d in record["differences"]]
    assert authors_code.sync_finding(sync).startswith(
        f"**Sync**: identical bits in {len(sync)} of {len(sync)} cases")
    assert authors_code.sync_tables(None) == (None, None)


def test_he_uniform_finding_by_hand():
    shown = pd.DataFrame({"max|w| / limit": [0.5, 0.999], "std / (limit/sqrt3)": [0.98, 1.01]})
    assert profile_scores.he_uniform_finding(shown, "Conv7") == (
        "**Conv7, He-uniform check:** no kernel holds a value beyond its limit √(6/fan_in) "
        "(largest |w| / limit 0.999); std / (limit/√3) ranges over [0.98, 1.01] across 2 "
        "kernels (1 for a uniform draw).")
    shown.loc[1, "max|w| / limit"] = 1.2
    assert "1 of 2 kernels hold values beyond" in profile_scores.he_uniform_finding(shown)


def test_a_set_reference_dir_switches_off_the_folder_beside_the_project(tmp_path, monkeypatch):
    monkeypatch.setenv("LAPERM_REFERENCE_DIR", str(tmp_path))  # empty: no .h5
    assert layout.reference_dir() is None
    (tmp_path / "Conv7.h5").write_bytes(b"")
    assert layout.reference_dir() == tmp_path
    monkeypatch.delenv("LAPERM_REFERENCE_DIR")
    beside = REPO.parent / "shared" / "reference" / "pretrained"
    if not any(beside.glob("*.h5")):
        pytest.skip("no ../shared/reference/pretrained here")
    assert layout.reference_dir() == beside


RECORD = {"section": "02_x", "profile": "smoke", "params": {}, "overridden": [],
          "hardware": {"cpu_count": 2, "accelerator": "none (CPU)"}, "wall_time_s": 30.0,
          "date": "2026-12-05T07:00:00+00:00", "commit": "0123456789",
          "skipped_parts": ["(b) checkpoints", "(c) VGG16"],
          "missing_inputs": ["Conv7.h5 was not found"]}


def test_status_lists_skipped_parts_missing_inputs_and_time_against_budget():
    old = {**RECORD, "section": "03_y", "profile": "cpu", "wall_time_s": 540.0}
    del old["skipped_parts"], old["missing_inputs"]
    clean = {**RECORD, "section": "04_z", "skipped_parts": [], "missing_inputs": []}
    table = status.status_table([RECORD, old, clean], ["02_x", "03_y", "04_z", "08"], "08",
                                "smoke", kernel_times={"02_x": {"wall_time_s": 90.0}})
    rows = table.set_index("section")
    assert rows.loc["02_x", "profile"] == "smoke"
    # the laperm command's time (kernel start included) when there is one: 1.5 of 10 min
    assert rows.loc["02_x", "time against budget"] == "1.5 min, 15% of 10"
    assert rows.loc["03_y", "time against budget"] == "9.0 min, 20% of 45"
    assert rows.loc["02_x", "parts skipped"] == "(b) checkpoints; (c) VGG16"
    assert rows.loc["02_x", "inputs missing"] == "Conv7.h5 was not found"
    assert rows.loc["03_y", "parts skipped"] == status.NOT_RECORDED
    assert (rows.loc["04_z", "parts skipped"], rows.loc["04_z", "inputs missing"]) == ("–", "–")
    assert status.skipped_notes(table) == [
        "**02_x**: skipped: (b) checkpoints; (c) VGG16; missing: Conv7.h5 was not found"]
    assert status.budget_share(None, "cpu") == "–"
    assert status.budget_share(120, "paper") == "2.0 min (no budget)"


def test_sync_or_record_reads_the_record_without_the_code():
    records = authors_code.read_records(REPO / "results" / "crosscheck")
    sync, differences = inputs.sync_or_record(None, records)
    assert len(sync) == len(records["sync"]["table"]) and len(differences) == 2
    assert inputs.sync_or_record(None, {"sync": None}) == (None, None)
