"""The verdict: which rows of the paper's table hold, from the records."""

from __future__ import annotations

import pandas as pd
import pytest

from laperm import records, verdict
from laperm.book import findings
from laperm.experiment import PAPER_ACCURACY, paper_config
from test_records import write_run


def _records(tmp_path, runs):
    for name, cfg, accs in runs:
        write_run(tmp_path / name, cfg, accs)
    return records.load_records(tmp_path)


def test_status_rules():
    paper = 0.9972
    assert verdict.status(paper, 0.9962, "paper scale", 10000) == verdict.REPRODUCED
    assert verdict.status(paper, 0.9800, "paper scale", 10000) == verdict.NOT_REPRODUCED
    assert verdict.status(paper, 0.9990, "reduced: 2 of 45 epochs", 10000) == verdict.NOT_TESTED
    assert verdict.status(paper, float("nan"), None, None) == verdict.NOT_TESTED
    # on 1000 test images two standard errors of 78% (2.6 points) exceed the 1 point
    assert verdict.tolerance(0.78, 1000) == pytest.approx(2 * (0.78 * 0.22 / 1000) ** 0.5)
    assert verdict.status(0.78, 0.765, "paper scale", 1000) == verdict.REPRODUCED
    assert verdict.status(0.78, 0.765, "paper scale", 100_000) == verdict.NOT_REPRODUCED


def test_verdict_table_from_records(tmp_path):
    f1 = paper_config("f1")
    conv7 = paper_config("conv7")
    df = _records(tmp_path, [
        ("f1_laperm_s0", f1, [(0.80, 0.80), (0.83, 0.82)]),
        ("f1_laperm_s1", f1.replace(seed=1), [(0.80, 0.80), (0.84, 0.83)]),
        ("f1_adam_s0", f1.adam_baseline(), [(0.92, 0.92)]),
        ("conv7_laperm_s0_e2", conv7.replace(epochs=2), [(0.98, 0.98), (0.99, 0.99)]),
        ("conv7_adam_s0_e3", conv7.adam_baseline().replace(epochs=3),
         [(0.97, 0.97), (0.985, 0.98), (0.98, 0.99)]),
    ])
    crosscheck = {"summary": [{"model": "f1", "side": "authors", "metric": "best_test_accuracy",
                               "mean": 0.823, "sd": 0.023, "seeds": {"0": 0.8, "1": 0.82}}]}
    t = verdict.verdict_table(df, crosscheck).set_index("experiment")
    assert list(t.index) == list(PAPER_ACCURACY)  # one row per line of the paper's table
    f1_row = t.loc["f1"]
    assert f1_row["status"] == verdict.NOT_REPRODUCED and f1_row["seeds"] == 2
    assert f1_row["ours"] == pytest.approx(0.825)
    assert "authors' own code: 82.3%" in f1_row["why"]
    assert t.loc["conv7", "status"] == verdict.NOT_TESTED  # 2 of 45 epochs is reduced
    assert "largest run: 2 of 45 epochs" in t.loc["conv7", "why"]
    # no Adam run at LaPerm's scale: the row names Adam's largest run and its scale
    assert t.loc["conv7", "adam"] != t.loc["conv7", "adam"]
    assert "Adam's largest run: 98.0% at 3 of 45 epochs" in t.loc["conv7", "why"]
    assert "Adam" not in t.loc["f1", "why"]
    assert t.loc["conv2", "why"].startswith("no run yet")
    assert t.loc["f1", "page"] == "05_5_weight_agnostic" and t.loc["conv7", "page"] == "05_1_conv7_mnist"
    assert verdict.counts(t) == {verdict.REPRODUCED: 0, verdict.NOT_REPRODUCED: 1,
                                 verdict.NOT_TESTED: 9}


def test_verdict_html_links_every_row_to_its_page(tmp_path):
    t = verdict.verdict_table(pd.DataFrame())
    html = findings.verdict_html(t)
    assert html.count("<tr>") == len(PAPER_ACCURACY) + 1
    assert 'href="05_4_sparse.html">ResNet50 (p = 30%)</a>' in html
    assert "reproduced" in findings.verdict_summary(t) or "not tested" in findings.verdict_summary(t)


def test_latest_snapshots_keeps_one_record_per_run_in_progress(tmp_path):
    conv2 = paper_config("conv2")
    df = _records(tmp_path, [("conv2_laperm_s0_e3", conv2.replace(epochs=3), [(0.3, 0.3)] * 3),
                             ("conv2_laperm_s0_e5", conv2.replace(epochs=5), [(0.4, 0.4)] * 5)])
    df["snapshot_of"] = ["conv2_laperm_s0 (in progress, 3 of 125 epochs)",
                         "conv2_laperm_s0 (in progress, 5 of 125 epochs)"]
    kept = records.latest_snapshots(df)
    assert list(kept["run"]) == ["conv2_laperm_s0_e5"]
    df["snapshot_of"] = None  # separate reduced runs are all kept
    assert len(records.latest_snapshots(df)) == 2
