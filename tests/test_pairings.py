"""LaPerm is compared only with the Adam run of the same experiment, scale, precision,
device (and seed where there is one): :func:`laperm.analysis.comparisons.pair_runs`, the
one pairing every page uses, checked against hand-computed pairs, with the four wrong
outputs of issue 27 (05_5's "f2_laperm − f1_adam", 05_4's −5.60 for ResNet50 p = 70%,
07's "up to 26.2 points" beside +23.8, 07_1's "− paper" of 1-epoch runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laperm.analysis import comparisons, records, results, verdict
from laperm.book import findings

COMMITTED = Path(__file__).resolve().parents[1] / "results"


def _rec(run, experiment, optimizer, acc, seed=0, scale="paper scale", precision="float32",
         device="CPU", paper_experiment=None, synced=True, **kw):
    row = {"run": run, "experiment": experiment, "paper_experiment":
           experiment if paper_experiment is None else paper_experiment,
           "optimizer": optimizer, "seed": seed, "scale": scale, "precision": precision,
           "device": device, "source": "committed", "preprocessing": "mnist_scale",
           "n_train": 55000, "kernels": "keras", "engine": "fit", "synced": synced,
           "variant": "" if precision == "float32" else precision, "paper_input": True,
           "model": experiment.split("_")[0], "test_accuracy_at_best_val": acc}
    return {**row, **kw}


def test_a_laperm_run_is_paired_with_the_adam_run_of_its_experiment_and_seed():
    """05_5 printed "f2_laperm − f1_adam": F2 LaPerm is set beside F2 Adam only."""
    df = pd.DataFrame([_rec("f1_adam_s0", "f1", "adam", 0.92),
                       _rec("f2_laperm_s0", "f2", "laperm", 0.49),
                       _rec("f2_adam_s1", "f2", "adam", 0.97, seed=1),
                       _rec("f2_adam_s0", "f2", "adam", 0.98)])
    by_seed = comparisons.pair_runs(df, by_seed=True)
    assert list(by_seed["run"]) == ["f2_laperm_s0"]
    assert by_seed.iloc[0]["adam_runs"] == ("f2_adam_s0",)
    assert by_seed.iloc[0]["LaPerm − Adam (points)"] == pytest.approx(-49.0)  # 49 − 98
    # Without seeds: both F2 Adam seeds, (0.97 + 0.98) / 2 = 0.975; never F1's.
    (pair,) = comparisons.pair_runs(df).itertuples()
    assert set(pair.adam_runs) == {"f2_adam_s0", "f2_adam_s1"}
    assert pair.Adam == pytest.approx(0.975)


def test_a_pruned_resnet50_is_paired_with_adam_of_the_same_p():
    """05_4 printed −5.60 for ResNet50 p = 70% (LaPerm 10.50% − the dense Adam's 16.10%);
    its Adam is the p = 70% one (20.10%): −9.60."""
    reduced = "reduced: 2 of 200 epochs, 10% of the training set"
    df = pd.DataFrame([_rec("resnet50_adam", "resnet50", "adam", 0.161, scale=reduced),
                       _rec("resnet50_p70_laperm", "resnet50_p70", "laperm", 0.105,
                            scale=reduced),
                       _rec("resnet50_p70_adam", "resnet50_p70", "adam", 0.201,
                            scale=reduced)])
    (pair,) = comparisons.pair_runs(df, by_seed=True).itertuples()
    assert pair.adam_runs == ("resnet50_p70_adam",)
    assert pair._10 == pytest.approx(-9.60)  # "LaPerm − Adam (points)"
    # A LaPerm run that never synced is no LaPerm run: no pair at all.
    assert comparisons.pair_runs(df.assign(synced=df["optimizer"] != "laperm")).empty


def test_runs_of_another_scale_precision_device_or_control_are_never_paired():
    df = pd.DataFrame([_rec("l", "conv7", "laperm", 0.99),
                       _rec("a_bf16", "conv7", "adam", 0.5, precision="mixed_bfloat16"),
                       _rec("a_gpu", "conv7", "adam", 0.6, device="NVIDIA H200"),
                       _rec("a_short", "conv7", "adam", 0.7, scale="reduced: 9 of 45 epochs"),
                       _rec("k20", "conv7_k20", "laperm", 0.996, paper_experiment="conv7"),
                       _rec("ctl", "f2_per_unit", "laperm", 0.6, paper_experiment=np.nan),
                       _rec("f2a", "f2", "adam", 0.97)])
    assert comparisons.pair_runs(df).empty
    df.loc[len(df)] = _rec("a", "conv7", "adam", 0.98)
    pairs = comparisons.pair_runs(df).set_index("run")
    # Conv7 at k = 20 counts for the Conv7 row and shares its Adam; the control has none.
    assert list(pairs.index) == ["l", "k20"]
    assert pairs["LaPerm − Adam (points)"].to_list() == pytest.approx([1.0, 1.6])


def test_the_page_sentences_and_the_results_tables_use_the_same_pairs():
    """The run-by-run sentences of a page (run_findings) and the Results page's pairs
    (laperm_adam_pairs) agree on the committed records."""
    stored = records.stored_runs(["resnet50", "resnet50_p70", "f1", "f2"], COMMITTED)
    lines = findings.run_findings(comparisons.results_table(stored), stored)
    gaps = [line for line in lines if " − " in line]
    # The ResNet50 LaPerm runs never synced: no gap; F1 and F2 by seed, hand-computed.
    assert gaps == [
        "f1_laperm_s0 − f1_adam_s0: -10.01 points at the same scale and seed.",
        "f1_laperm_s1 − f1_adam_s1: -10.63 points at the same scale and seed.",
        "f1_laperm_s2 − f1_adam_s2: -9.33 points at the same scale and seed.",
        "f2_laperm_s0 − f2_adam_s0: -48.17 points at the same scale and seed.",
        "f2_laperm_s1 − f2_adam_s1: -57.74 points at the same scale and seed.",
        "f2_laperm_s2 − f2_adam_s2: -58.03 points at the same scale and seed."]
    pairs = comparisons.laperm_adam_pairs(records.load_records(COMMITTED)).set_index(
        "experiment")
    # F1: (0.8238 + 0.8181 + 0.8312) / 3 − (0.9239 + 0.9244 + 0.9245) / 3 = −9.99 points.
    assert pairs.loc["f1", "LaPerm − Adam (points)"] == pytest.approx(-9.99, abs=0.005)
    assert pairs.loc["f1", "LaPerm − Adam (points)"] == pytest.approx(
        np.mean([-10.01, -10.63, -9.33]), abs=0.01)


def test_the_verdict_takes_its_adam_column_from_the_same_pairs():
    groups = verdict.verdict_groups(records.load_records(COMMITTED).assign(source="committed"))
    f2 = groups[(groups["experiment"] == "f2") & (groups["scale"] == "paper scale")].iloc[0]
    assert f2["adam"] == pytest.approx((0.9765 + 0.9766 + 0.9778) / 3)
    assert f2["adam_n"] == 3


def test_up_to_names_a_number_of_the_table_beside_it():
    """07 said "up to 26.2 points" (one seed) beside a table row of +23.8 (two seeds)."""
    checks = pd.DataFrame({
        "experiment": ["conv2", "conv2", "conv4"], "optimizer": ["laperm"] * 3,
        "k": [1000.0] * 3, "seed": [0, 1, 0], "variant": ["", "", ""],
        "scale": ["reduced: 10 of 125 epochs"] * 2 + ["reduced: 5 of 125 epochs"],
        "epochs": [10, 10, 5], "optimism_of_choosing_on_test": [0.0, 0.0, 0.0],
        "mean_synced_minus_unsynced": [0.02, 0.03, 0.01],
        "mean_recalibrated_minus_stale": [0.262, 0.214, 0.183]})
    table = results.pitfalls_table(checks)
    assert list(table["re-estimated − stale BatchNorm"]) == ["+23.8", "+18.3"]
    stale = results.pitfalls_sentences(checks, by_group=True)[0]
    assert stale == ("Stale BatchNorm statistics cost up to 23.8 points of test accuracy on "
                     "average over epochs (conv2, laperm, k = 1000, reduced: 10 of 125 epochs, "
                     "mean of 2 seeds).")
    committed = comparisons.measurement_checks(COMMITTED)
    shown = set(results.pitfalls_table(committed)["re-estimated − stale BatchNorm"])
    said = results.pitfalls_sentences(committed, by_group=True)[0]
    assert f"+{said.split('up to ')[1].split(' points')[0]}" in shown


def test_minus_paper_only_for_runs_at_the_papers_scale():
    """07_1 computed "− paper" for 1-epoch runs (−81.21)."""
    base = {"paper_experiment": "conv2", "experiment": "conv2", "variant": "", "k": 1000,
            "paper_epochs": 125, "n_train": 45000, "best_test_accuracy_any_epoch": 0.5,
            "n_test": 1000, "wall_time_s": 60.0, "optimizer": "laperm", "synced": True}
    df = pd.DataFrame([{**base, "epochs_run": 1, "scale": "reduced: 1 of 125 epochs",
                        "test_accuracy_at_best_val": 0.30},
                       {**base, "epochs_run": 125, "scale": "paper scale",
                        "test_accuracy_at_best_val": 0.78}])
    t = comparisons.records_table(df).set_index("scale")
    assert t.loc["1/125 ep., 45,000 images", "− paper (points)"] == "–"
    assert t.loc["paper scale", "− paper (points)"] == f"{(0.78 - 0.7821) * 100:+.2f}"  # −0.21
    t = comparisons.records_table(records.load_records(COMMITTED))
    assert set(t.loc[t["scale"] != "paper scale", "− paper (points)"]) <= {"–"}


# ---------------------------------------------------------------- the finding box


def test_the_finding_box_is_computed_from_the_verdict_and_links_its_row():
    from laperm.book import finding_box

    row = {"experiment": "conv7", "paper": 0.9972, "ours": 0.9959, "low": 0.9943,
           "high": 0.9974, "n": 3, "n_test": 10000.0, "adam": np.nan, "adam_n": 0,
           "status": "reproduced", "why": "ours − paper -0.1 points", "page": "05_1_conv7_mnist"}
    short = {**row, "experiment": "conv2", "paper": 0.7821, "ours": 0.5, "n": 1,
             "status": verdict.NOT_TESTED, "why": "largest run: 3 of 125 epochs, 51.1% (1 seed); "
             "one paper-scale run ≈ 2.0 h at the rate its runs trained on CPU"}
    table = pd.DataFrame([row, short])
    assert finding_box.row_sentence(row) == (
        "Conv7: 99.59% [99.43, 99.74] against the paper's 99.72%, 3 seeds, 10,000 test images"
        " — reproduced")
    assert finding_box.row_sentence(short).startswith(
        "Conv2: the paper's 78.21% — not tested at the paper's scale (largest run: 3 of 125")
    box = finding_box.finding_box("05_1_conv7_mnist", table)
    assert 'href="07_results.html#verdict-conv7"' in box and "Conv2" not in box
    assert 'id="verdict-conv7"' in findings.verdict_html(table.assign(
        paper_n_test=10000, differs=""))
    # A page without a row of its own: what it shows, and the rows it bears on.
    other = finding_box.finding_box("05_3_sync_period", table.assign(experiment=["f2", "f1"]))
    assert "What this page shows" in other and "#verdict-f2" in other and "#verdict-f1" not in other
    whole = finding_box.finding_box("02_weight_profiles", table)
    assert "Of the paper's 2 rows: 1 reproduced, 1 not tested" in whole
    # Every section page has a box under its title, and folds its run-by-run findings.
    for page in ("02_weight_profiles", "03_locations_vs_values", "04_laperm",
                 "04_1_authors_code", "04_2_torch_and_jax", "05_1_conv7_mnist",
                 "05_2_cifar_convs", "05_3_sync_period", "05_4_sparse",
                 "05_5_weight_agnostic", "06_published_checkpoints"):
        text = (COMMITTED.parent / "book" / f"{page}.md").read_text()
        title = text.index("\n# ")
        first_cell = text.index("```{code-cell}", title)
        assert f'finding_box.show("{page}")' in text[first_cell:first_cell + 200], page
        if page.startswith("05_"):  # the run-by-run lists: folded, not deleted
            assert "show_folded(page_findings(" in text.split("## What this page found")[1]


def test_folded_findings_keep_every_sentence():
    from laperm.book import finding_box

    html = finding_box.folded(["a: **97.00%** test accuracy.", "`x` < y"])
    assert html.startswith('<details class="findings"><summary>2 sentences')
    assert "<b>97.00%</b>" in html and "<code>x</code> &lt; y" in html


def test_the_box_opens_with_what_the_execution_found():
    from laperm.book import finding_box

    box = ('<div class="admonition tip finding-box" id="finding"><p class="admonition-title">'
           "What this page shows</p><p>x</p></div>")
    assert finding_box.with_found(box, []) == box
    two = finding_box.with_found(box, ["F2: **97.10%** after `3` epochs.", "b < c"])
    assert two == (box[:-len("</div>")] + "<p><b>This execution found</b>:</p><ul><li>F2: "
                   "<b>97.10%</b> after <code>3</code> epochs.</li><li>b &lt; c</li></ul></div>")
    five = finding_box.with_found(box, [f"s{i}" for i in range(5)])
    assert "<li>s2</li>" in five and "<li>s3</li>" not in five
    assert 'the first 3 of 5: <a href="#what-this-page-found">all below</a>' in five
    # Every page whose findings are computed in its execution ends with this function, under
    # the heading the link points to.
    for page in ("02_weight_profiles", "03_locations_vs_values", "04_laperm",
                 "04_1_authors_code", "04_2_torch_and_jax", "06_published_checkpoints"):
        text = (COMMITTED.parent / "book" / f"{page}.md").read_text()
        end = text.split("\n## What this page found\n")[1]
        assert "from laperm.book.finding_box import show_findings" in text, page
        assert "show_findings(" in end and "findings import show_findings" not in text, page


def test_the_findings_at_the_end_update_the_box_at_the_top(monkeypatch):
    import IPython.display

    from laperm.book import finding_box

    shown, updated = [], []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    monkeypatch.setattr(IPython.display, "update_display",
                        lambda obj, **kw: updated.append((obj, kw)))
    box = '<div class="finding-box"><p>rows</p></div>'
    monkeypatch.setattr(finding_box, "_shown", {"page": "05_4_sparse", "html": box})
    finding_box.show_folded(["LaPerm p=70%: **97.00%**.", "b", "c", "d"])
    assert len(shown) == 1 and shown[0][0].data.startswith('<details class="findings">')
    (html, kw), = updated
    assert kw == {"display_id": "finding-box-05_4_sparse"}
    assert html.data == finding_box.with_found(box, ["LaPerm p=70%: **97.00%**.", "b", "c", "d"])
    finding_box.show_findings([])  # nothing found: the box stays as it is
    assert len(updated) == 1
