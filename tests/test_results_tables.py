"""The Results pages' tables, sentences and figure (laperm.analysis.results and friends),
checked on small hand-made tables whose expected values are computed by hand."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laperm import paper, viz  # noqa: E402
from laperm.analysis import comparisons as C  # noqa: E402
from laperm.analysis import results  # noqa: E402
from laperm.book import findings, tables  # noqa: E402

NAN = float("nan")


def test_fmt_writes_a_dash_for_nothing():
    assert results.fmt(0.78214, ".2%") == "78.21%"
    assert results.fmt(NAN, ".2%") == "–"
    assert results.fmt(None, "+.1f") == "–"
    assert results.fmt(-2.345, "+.1f") == "-2.3"


def test_row_label_names_the_paper_rows():
    assert paper.row_label("conv7") == "Conv7"
    assert paper.row_label("resnet50_p30") == "ResNet50 (p = 30%)"
    assert paper.row_label("resnet50") == "ResNet50"
    assert findings.row_label is paper.row_label


def test_groups_table_formats_each_group():
    groups = pd.DataFrame({
        "experiment": ["conv7", "resnet50_p70"], "device": ["CPU", "H200"],
        "engine": ["fit", "device"], "scale": ["paper scale", "reduced"],
        "precision": ["float32", "mixed_bfloat16"], "kernels": ["keras", "fused"], "n": [3, 1],
        "mean": [0.9971, 0.5], "low": [0.9965, 0.45], "high": [0.9977, 0.55],
        "n_test": [10000, 1000], "paper": [0.9972, 0.9097], "status": ["reproduced", "x"],
        "source": ["committed", "committed"], "date": ["2026-12-01T10:00:00", None]})
    t = results.groups_table(groups)
    assert list(t["row"]) == ["Conv7", "ResNet50 (p = 70%)"]
    assert t["mean [95% interval]"].iloc[0] == "99.71% [99.65%, 99.77%]"
    assert list(t["test images"]) == ["10,000", "1,000"]
    assert list(t["trained on"]) == ["CPU, 2026-12-01", "H200, device engine"]
    assert list(t["arithmetic"]) == ["float32", "bf16, fused kernels"]
    assert len(t.columns) == 8  # one table on a section page, not two
    assert results.groups_table(pd.DataFrame()).empty


def _pairs():
    return pd.DataFrame({"experiment": ["conv7", "conv2"], "source": ["committed"] * 2,
                         "device": ["CPU", "CPU"], "scale": ["paper scale", "reduced"],
                         "variant": ["–", "mixed_bfloat16"], "seeds": [3, 1],
                         "LaPerm": [0.9973, 0.6], "Adam": [0.9963, NAN],
                         "paper_input": [True, True], "model": ["conv7", "conv2"],
                         "LaPerm − Adam (points)": [0.1, NAN]})


def test_pairs_table_formats_and_drops_the_columns_for_computing():
    t = results.pairs_table(_pairs())
    assert "paper_input" not in t and "model" not in t
    assert list(t["LaPerm"]) == ["99.73%", "60.00%"]
    assert list(t["Adam"]) == ["99.63%", "–"]
    assert list(t["LaPerm − Adam (points)"]) == ["+0.10", "–"]
    assert list(t["seeds"]) == [3, 1]
    assert results.pairs_table(pd.DataFrame()).empty


def test_headline_sentences_keep_the_paper_scale_only():
    h = _pairs().assign(variant=["–", "mixed_bfloat16"], scale=["paper scale", "paper scale"],
                        **{"LaPerm − Adam (points)": [0.14, -2.91]})
    (line,) = results.headline_sentences(h)
    assert line == ("At the paper's scale, LaPerm − Adam with BatchNorm treated alike: conv7 on "
                    "CPU +0.1 points (3 seeds), conv2 (mixed_bfloat16) on CPU -2.9 points "
                    "(1 seed).")
    assert results.headline_sentences(_pairs().assign(scale="reduced")) == []
    assert results.headline_sentences(pd.DataFrame()) == []


def test_convergence_sentences_skip_short_pairs():
    table = pd.DataFrame({"experiment": ["conv2", "conv4"], "device": ["CPU", "H200"],
                          "variant": ["–", "fused"], "epochs": [91, 5],
                          "LaPerm 90%": [23.0, 1], "LaPerm 95%": [44.0, 1],
                          "LaPerm 99%": [63.6, 2], "Adam 90%": [12.0, 1],
                          "Adam 95%": [26.0, 1], "Adam 99%": [47.0, 2]})
    assert results.convergence_sentences(table) == [
        "conv2 (CPU, 91 epochs): LaPerm reaches 90/95/99% of its final test accuracy at "
        "epochs 23/44/64, Adam at 12/26/47."]
    assert len(results.convergence_sentences(table, min_epochs=5)) == 2
    assert "(H200, fused, 5 epochs)" in results.convergence_sentences(table, min_epochs=5)[1]


def _distribution():
    return {"seeds": [0, 1, 2], "date": "2026-12-01T11:35:16+00:00", "scale": "notebook scale",
            "summary": [
                {"model": "f1", "side": "authors", "metric": "best_test_accuracy",
                 "mean": 0.8, "sd": 0.02, "seeds": {"0": 0.78, "1": 0.8, "2": 0.82}},
                {"model": "f1", "side": "ours", "metric": "best_test_accuracy",
                 "mean": 0.9, "sd": 0.001, "seeds": {"0": 0.9, "1": 0.9, "2": 0.9}},
                {"model": "f1", "side": "ours", "metric": "last_test_accuracy",
                 "mean": 0.1, "sd": 0.0, "seeds": {"0": 0.1}}]}


def test_authors_code_table_and_note(tmp_path):
    t = results.authors_code_table(_distribution())
    assert list(t["experiment"]) == ["F1", "F1"]
    assert list(t["run by"]) == ["the authors' code", "ours"]
    assert list(t["paper"]) == ["85.46%", "85.46%"]
    assert list(t["mean ± sd over seeds"]) == ["80.00% ± 2.00", "90.00% ± 0.10"]
    assert list(t["seeds"]) == [3, 3]
    assert list(t["mean − paper (points)"]) == ["-5.5", "+4.5"]  # (0.8 - 0.8546) * 100
    assert results.authors_code_table(None).empty
    assert results.crosscheck_note(_distribution()).startswith(
        "Record of 2026-12-01 (notebook scale);")
    assert results.load_crosscheck(tmp_path) is None
    (tmp_path / "crosscheck").mkdir()
    (tmp_path / "crosscheck" / "distribution.json").write_text(json.dumps(_distribution()))
    assert results.load_crosscheck(tmp_path)["scale"] == "notebook scale"


def _checks(with_stale=True):
    df = pd.DataFrame({
        "experiment": ["conv2", "conv2", "conv7"], "optimizer": ["laperm", "laperm", "adam"],
        "k": [1000.0, 1000.0, NAN], "seed": [0, 1, 0], "variant": ["", "", "fused"],
        "scale": ["paper scale"] * 3, "epochs": [125, 120, 45],
        "optimism_of_choosing_on_test": [0.01, 0.03, 0.002],
        "mean_synced_minus_unsynced": [0.2, 0.4, NAN]})
    if with_stale:
        df["mean_recalibrated_minus_stale"] = [0.05, 0.15, NAN]
    return df


def test_pitfalls_table_groups_runs_and_means_over_seeds():
    t = results.pitfalls_table(_checks())
    assert list(t["run"]) == ["conv2, laperm, k = 1000", "conv7, adam, fused"]
    assert list(t["seeds"]) == [2, 1]
    assert list(t["optimism of choosing on test"]) == ["+2.0", "+0.2"]
    assert list(t["synced − unsynced"]) == ["+30.0", "–"]
    assert list(t["re-estimated − stale BatchNorm"]) == ["+10.0", "–"]
    no_stale = results.pitfalls_table(_checks(with_stale=False))
    assert list(no_stale["re-estimated − stale BatchNorm"]) == ["–", "–"]
    assert results.pitfalls_table(pd.DataFrame()).empty


def test_pitfalls_sentences():
    stale, optimism = results.pitfalls_sentences(_checks())
    assert stale == ("Stale BatchNorm statistics cost up to 15.0 points of test accuracy on "
                     "average over epochs (conv2, laperm, paper scale).")
    assert optimism == ("Choosing the epoch on the test set adds 1.40 points on average "
                        "(at most 3.00) over 3 runs.")
    (only,) = results.pitfalls_sentences(_checks(with_stale=False))
    assert only.startswith("Choosing the epoch")
    checks = _checks()
    results.pitfalls_sentences(checks)
    assert list(checks["k"].iloc[:1]) == [1000.0]  # the input is left as it was


def _history(run, experiment, optimizer, epochs, stale=True):
    e = np.arange(1, epochs + 1)
    h = pd.DataFrame({"run": run, "experiment": experiment, "optimizer": optimizer, "epoch": e,
                      "test_accuracy": 0.5 + 0.01 * e})
    h["test_accuracy_stale_bn"] = h["test_accuracy"] - 0.1 / e if stale else NAN
    return h


def test_longest_three_evaluations_and_their_sentences():
    hist = pd.concat([_history("a", "conv2", "laperm", 3), _history("b", "conv2", "laperm", 6),
                      _history("c", "conv2", "adam", 9),
                      _history("d", "conv4", "laperm", 2, stale=False)])
    longest = results.longest_three_evaluations(hist)
    assert list(longest) == ["conv2, LaPerm: 6 epochs"]
    assert set(longest["conv2, LaPerm: 6 epochs"]["run"]) == {"b"}
    (line,) = results.three_evaluations_sentences(longest)
    # epoch 1: 0.1 / 1 = 10 points; epoch 6 (the last): 0.1 / 6 = 1.7 points
    assert line == ("conv2, LaPerm: 6 epochs: re-estimated − stale BatchNorm +10.0 points at "
                    "epoch 1, +1.7 at epoch 6.")
    assert results.longest_three_evaluations(hist.drop(columns="test_accuracy_stale_bn")) == {}


def test_batchnorm_alike_table_and_sentences():
    alike = pd.DataFrame({
        "experiment": ["conv2"], "scale": ["paper scale"], "variant": ["–"], "seeds": [1],
        "LaPerm re-estimated": [0.75], "Adam re-estimated": [0.8], "LaPerm stale": [0.7],
        "Adam as trained": [0.79], "Adam: re-estimated − as trained (points)": [1.0],
        "LaPerm − Adam, both re-estimated (points)": [-5.0],
        "LaPerm − Adam, neither (points)": [-9.0]})
    t = results.batchnorm_alike_table(alike)
    assert list(t.iloc[0]) == ["conv2", "paper scale", "–", 1, "75.00%", "80.00%", "70.00%",
                               "79.00%", "+1.0", "-5.0"]
    assert results.batchnorm_alike_sentences(alike) == [
        "conv2 (paper scale), last epoch: re-estimating Adam's statistics changes its test "
        "accuracy by +1.0 points; LaPerm − Adam is -5.0 points with both re-estimated and "
        "-9.0 with neither."]
    assert results.batchnorm_alike_table(pd.DataFrame()).empty
    assert results.batchnorm_alike_sentences(pd.DataFrame()) == []


def test_input_table_and_sentences():
    inputs = pd.DataFrame({
        "experiment": ["conv2", "conv2"], "optimizer": ["laperm", "adam"], "k": [1000.0, NAN],
        "scale": ["reduced"] * 2, "precision": ["float32"] * 2, "source": ["committed"] * 2,
        "input": ["cifar_standardize"] * 2, "paper_input_name": ["raw", None],
        "seeds_paper_input": [2, 0], "seeds": [1, 1], "accuracy_paper_input": [0.5, NAN],
        "accuracy": [0.6, 0.55], "difference": [0.1, NAN]})
    t = results.input_table(inputs)
    assert list(t["run"]) == ["conv2, laperm, k = 1000", "conv2, adam"]
    assert list(t["paper's input"]) == ["50.00% (raw, 2 seeds)", "–"]
    assert list(t["other input"]) == ["60.00% (cifar_standardize, 1 seed)",
                                      "55.00% (cifar_standardize, 1 seed)"]
    assert list(t["other − paper's (points)"]) == ["+10.0", "–"]
    assert results.input_sentences(inputs) == [
        "conv2, laperm (reduced): cifar_standardize instead of raw input changes test "
        "accuracy by +10.0 points."]
    assert results.input_table(pd.DataFrame()).empty


def test_conv7_table_keeps_both_sync_periods():
    records = pd.DataFrame({
        "experiment": ["conv7", "conv7_k20", "conv2"], "optimizer": ["laperm", "laperm", "adam"],
        "k": [1200.0, 20.0, NAN], "seed": [0, 0, 0], "scale": ["paper scale"] * 3,
        "test_accuracy_at_best_val": [0.9972, 0.9969, 0.7], "final_test_accuracy": [0.997, NAN, 0.7],
        "best_epoch": [40, 33, 1], "wall_time_s": [5400.0, 3000.0, 1.0],
        "source": ["committed"] * 3})
    t = results.conv7_table(records)
    assert list(t["run"]) == ["conv7, laperm, k = 1200", "conv7_k20, laperm, k = 20"]
    assert list(t["test at best val"]) == ["99.72%", "99.69%"]
    assert list(t["final test"]) == ["99.70%", "–"]
    assert list(t["wall time (min)"]) == ["90", "50"]
    assert results.conv7_table(records[records["experiment"] == "conv2"]).empty


def test_speed_and_precision_sentences():
    summary = pd.DataFrame({"model": ["conv2", "conv4"], "x default": [2.345, 1.5],
                            "meets 2x": [True, False]})
    assert results.speedup_sentence(summary, "record X") == (
        "Training speed here: the fastest way trains 1 of 2 CIFAR-10 models at least 2x "
        "faster than both the previous release and today's default path (over the default: "
        "conv2 2.35x, conv4 1.50x; record X).")
    check = pd.DataFrame({"precision": ["float32", "mixed_bfloat16"],
                          "seed spread (points)": [3.8, 1.0],
                          "bfloat16 - float32 (points)": [None, 1.1],
                          "within seed spread": [None, True]})
    assert results.precision_check_sentence(check) == (
        "After 10 epochs, mixed_bfloat16 moves Conv2's LaPerm accuracy by +1.10 points, within "
        "the spread between seeds (3.80 points; reduced runs, 2 seeds each).")
    records = pd.DataFrame({"scale": ["paper scale", "paper scale", "reduced"],
                            "precision": ["float32", "mixed_bfloat16", "mixed_float16"]})
    assert results.paper_scale_precision_sentence(records) == (
        "Paper-scale runs on this page use mixed_bfloat16 (the appendix lists each run's "
        "precision).")
    assert results.paper_scale_precision_sentence(records.iloc[[0, 2]]) == (
        "No paper-scale run on this page uses mixed_bfloat16.")


def test_precision_over_training_sentences():
    table = pd.DataFrame({"epoch": np.arange(1, 21), "difference (points)": [1.0] * 10 + [3.0] * 10})
    table.attrs = {"seed": 0, "float32_run": "conv2_laperm_s0_e91",
                   "mixed_bfloat16_run": "conv2_laperm_s0_bfloat16_fused"}
    (line,) = results.precision_over_training_sentences({"conv2, LaPerm": table,
                                                          "conv2, Adam": None})
    sd = float(pd.Series([1.0] * 10 + [3.0] * 10).std())
    assert line == (f"conv2, LaPerm, seed 0, epochs 1-20: mixed_bfloat16 − float32 +2.00 points "
                    f"on average, +3.00 over the last 10 epochs (epoch-to-epoch sd {sd:.2f} "
                    f"points; runs “Conv2 LaPerm s0 (91 ep.)” and “Conv2 LaPerm s0 (bf16)”).")
    assert math.isclose(sd, 1.026, abs_tol=1e-3)
    empty = results.precision_over_training_tables(pd.DataFrame(), pd.DataFrame())
    assert empty == {"conv2, LaPerm": None, "conv2, Adam": None}


def test_appendix_helpers():
    t = results.settings_display()
    assert len(t) == len(paper.TABLE)
    assert t["paper top-1"].iloc[0] == "99.72%" and t["pruned"].iloc[-1] == "92%"
    assert results.unfinished_sentences([]) == []
    assert results.unfinished_sentences([{"run": "conv4_laperm_s0", "epochs_done": 3,
                                          "epochs": 125}]) == [
        "Runs in progress in `results/` (not shown until they finish; their partial records "
        "are the rows named `…_e<epochs>`): `conv4_laperm_s0` (3 of 125 epochs)."]


def test_record_tables_one_per_source_with_constant_columns_said_once(monkeypatch):
    seen = []

    def fake_records_table(part, metric):
        seen.append((list(part["run"]), metric))
        return pd.DataFrame({"run": part["run"], "scale": "paper scale"})

    monkeypatch.setattr(results, "records_table", fake_records_table)
    records = pd.DataFrame({"run": ["a", "b", "c"],
                            "source": ["committed", "committed", "this build (cpu)"]})
    headings = findings.source_headings("cpu")
    assert headings == {"committed": "**Committed runs (`results/`)**",
                        "this build (cpu)": "**Runs of this build (profile `cpu`)**"}
    (h1, t1, c1), (h2, t2, c2) = results.record_tables(records, headings, "m")
    assert seen == [(["a", "b"], "m"), (["c"], "m")]
    assert list(t1.columns) == ["run"] and c1 == "Every row: scale: paper scale."
    assert list(t2.columns) == ["run", "scale"] and c2 == ""  # one row: nothing is constant
    (_, empty, caption), _ = results.record_tables(records.iloc[2:], headings, "m")
    assert empty.empty and caption == ""
    assert results.record_tables(records.iloc[:0], headings, "m") == []


def test_show_titled_tables(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    tables.show_titled_tables([], empty="_No records._")
    assert [d.data for d in shown] == ["_No records._"]
    shown.clear()
    tables.show_titled_tables([("**A**", pd.DataFrame({"x": [1]}), "Every row: y."),
                               ("**B**", pd.DataFrame(), "")], na_rep="–")
    texts = [d.data for d in shown]
    assert texts[0] == "**A**" and "<td>1</td>" in texts[1] and texts[2] == "Every row: y."
    assert texts[3:] == ["**B**", "_none_"]


def _figure_records():
    return pd.DataFrame({
        "experiment": ["conv7", "conv7", "conv2", "conv2", "f1", "conv2"],
        "paper_experiment": ["conv7", "conv7", "conv2", "conv2", "f1", "conv2"],
        "optimizer": ["laperm", "adam", "laperm", "laperm", "laperm", "laperm"],
        "synced": [True, True, True, False, True, True],
        "scale": ["paper scale", "paper scale", "reduced", "reduced", "reduced", "reduced"],
        "paper_input": [True, True, True, True, True, False],
        "test_accuracy_at_best_val": [0.997, 0.996, 0.6, 0.5, NAN, 0.65]})


def test_paper_row_runs_and_labels():
    shown = C.paper_row_runs(_figure_records(), "test_accuracy_at_best_val")
    # never synced, no accuracy and another input are left out
    assert list(shown["test_accuracy_at_best_val"]) == [0.997, 0.996, 0.6]
    labels = C.paper_row_labels(shown)
    assert labels[:3] == ["Conv7", "Conv2  (reduced)", "Conv4  (no run)"]
    assert len(labels) == len(paper.PAPER_ACCURACY)


def test_plot_paper_rows_draws_a_star_per_row_and_a_dot_per_run():
    ax = viz.plot_paper_rows(_figure_records(), "test_accuracy_at_best_val")
    try:
        stars, *dots = ax.collections
        assert len(stars.get_offsets()) == len(paper.PAPER_ACCURACY)
        assert sorted(len(d.get_offsets()) for d in dots) == [1, 1, 1]
        assert [t.get_text() for t in ax.get_yticklabels()][0] == "Conv7"
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
            "Adam, paper scale", "LaPerm, paper scale", "LaPerm, reduced", "paper"]
    finally:
        plt.close(ax.figure)
    empty = viz.plot_paper_rows(pd.DataFrame(), "test_accuracy_at_best_val")
    assert len(empty.collections) == 1
    plt.close(empty.figure)


def test_show_frame_and_show_sentences(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    df = pd.DataFrame({"a": [1, None]})
    tables.show_frame(df, na_rep="–")
    assert "<td>–</td>" in shown[-1].data and 'class="dataframe' in shown[-1].data
    tables.show_frame(pd.DataFrame(), empty="_nothing_")
    assert shown[-1].data == "_nothing_"
    before = len(shown)
    tables.show_frame(None)
    assert len(shown) == before
    assert tables.show_sentences(["x", "y"]) == ["x", "y"]
    assert [s.data for s in shown[-2:]] == ["x", "y"]
    assert "<th>a</th>" in tables.frame_html(df) and "index" not in tables.frame_html(df)
    # columns alike in every row are said once above the table, which then fits in one
    pairs = pd.DataFrame({"experiment": ["conv7", "f1"], "source": ["committed"] * 2,
                          "device": ["CPU"] * 2, "settings": ["–"] * 2, "gap": ["+0.09", "-9.99"]})
    tables.show_frame(pairs)
    assert shown[-2].data == "All rows: source: committed; device: CPU."
    assert "<th>device</th>" not in shown[-1].data and "<th>gap</th>" in shown[-1].data
    tables.show_frame(pairs, max_columns=None)  # page 7.1: every column, as it is
    assert "<th>device</th>" in shown[-1].data


def test_page_records_read_the_committed_and_this_builds_runs(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(findings, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setattr(findings, "build_dir", lambda: tmp_path / "build")
    monkeypatch.setattr(findings.R, "load_sources", lambda folders: seen.update(folders) or "ok")
    assert findings.page_records("cpu") == "ok"
    assert seen == {"committed": tmp_path / "results",
                    "this build (cpu)": tmp_path / "build" / "runs" / "cpu"}
    assert findings.build_source("smoke") == "this build (smoke)"


@pytest.mark.parametrize("key", sorted(results.NOTHING_YET))
def test_every_note_of_nothing_yet_is_emphasised(key):
    text = results.NOTHING_YET[key]
    assert text.startswith("_") and text.endswith("_")
