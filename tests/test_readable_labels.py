"""Short run labels, durations and percentages (issue 27, point 5), and the tables and
figures that use them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laperm.analysis.labels import duration, experiment_label, percent, short_run_label


@pytest.mark.parametrize("name, label", [
    ("conv2_laperm_s0_e10_cifar_standardize_bfloat16_fused",
     "Conv2 LaPerm s0 (10 ep., standardised input, bf16)"),
    ("conv4_adam_s0_e2_f25", "Conv4 Adam s0 (2 ep., 25% data)"),
    ("conv7_laperm_s1", "Conv7 LaPerm s1"),
    ("conv7_k20_laperm_s0", "Conv7 k=20 LaPerm s0"),
    ("resnet50_p70_laperm_s0_e2_f10", "ResNet50 p=70% LaPerm s0 (2 ep., 10% data)"),
    ("f2_per_unit_adam_s3", "F2 per-unit Adam s3"),
    ("conv13_adam_s0_e6_h200", "Conv13 Adam s0 (6 ep., H200)"),
    ("conv2_laperm_s0_e10_fused", "Conv2 LaPerm s0 (10 ep.)"),
    ("conv7_laperm_s0_e1_f10-3f2a9c0d1b7e", "Conv7 LaPerm s0 (1 ep., 10% data)"),
    ("Conv7 LaPerm k=20", "Conv7 LaPerm k=20"),  # a page's own label stays
    ("conv2_<x>_s1", "conv2_<x>_s1"),
])
def test_short_run_label(name, label):
    assert short_run_label(name) == label


def test_experiment_label_and_the_every_committed_run_is_shorter():
    assert experiment_label("f2_dense_k25") == "F2 dense k=25"
    assert experiment_label("crosscheck") == "crosscheck"
    long = "conv2_laperm_s0_e10_cifar_standardize_bfloat16_fused"
    assert len(short_run_label(long)) < len(long) and "_" not in short_run_label(long)


def test_durations_read_in_hours_and_percentages_with_two_decimals():
    assert duration(49114) == "13.6 h"  # 49114 / 3600 = 13.64
    assert duration(45.4) == "45 s" and duration(720) == "12 min"
    assert duration(None) == "—" and duration(float("nan")) == "—"
    assert percent(0.601) == "60.10%" and percent(0.601, 1) == "60.1%"
    assert percent(float("nan")) == "—"


def _run_table():
    """A results_table-like frame of two runs (every column of the section pages' tables)."""
    return pd.DataFrame({
        "paper row": ["conv2", "conv2"], "seed": [0, 1], "optimizer": ["Adam", "LaPerm (inner Adam)"],
        "k": [float("nan"), 1000.0], "syncs": [float("nan"), 30.0], "p": [0.0, 0.0],
        "scale": ["reduced: 91 of 125 epochs", "reduced: 10 of 125 epochs"], "steps": [10, 20],
        "best val acc": [0.61, 0.62], "test acc at best val": [0.601, 0.7], "final test acc": [0.6, 0.69],
        "best test acc, any epoch": [0.61, 0.71], "paper": [float("nan"), 0.78],
        "wall time (s)": [49114.0, 45.0], "hardware": ["CPU, 2 cores", "NVIDIA H200"],
        "date": ["2026-11-01", "2026-11-02"]},
        index=pd.Index(["conv2_adam_s0_e91", "conv2_laperm_s1_e10_bfloat16_fused"], name="run"))


def test_a_section_table_has_at_most_eight_columns_and_wall_times_in_hours(monkeypatch):
    from IPython import display as ipd

    from laperm.book.page import MAX_COLUMNS, section_columns, show_table

    table = _run_table()
    kept, left_out = section_columns(table.drop(columns="steps"))
    assert len(kept.columns) == MAX_COLUMNS - 1 == 7  # and the run labels: 8
    # the first seven of the priority list, in the table's order
    assert list(kept.columns) == ["optimizer", "k", "p", "scale", "test acc at best val",
                                  "final test acc", "paper"]
    assert "date" in left_out and "best test acc, any epoch" in left_out
    shown = []
    monkeypatch.setattr(ipd, "display", lambda obj: shown.append(obj))
    show_table(table)
    html = shown[0].to_html()
    assert html.count("<th class=\"col_heading") <= MAX_COLUMNS - 1
    assert "60.10%" in html and "49114" not in html
    assert "Not shown here:" in html and "page 7.1" in html
    assert "p: 0%" in html  # a constant column is the caption


def test_wall_time_column_reads_in_hours(monkeypatch):
    from IPython import display as ipd

    from laperm.book.page import show_table

    shown = []
    monkeypatch.setattr(ipd, "display", lambda obj: shown.append(obj))
    show_table(_run_table()[["test acc at best val", "wall time (s)"]])
    html = shown[0].to_html()
    assert "13.6 h" in html and "45 s" in html and "wall time (s)" not in html


def test_stored_curves_are_at_most_eight_the_longest():
    from laperm.book.page import MAX_CURVES, curves_shown

    curves = {f"run {i}": [pd.DataFrame({"epoch": range(i + 1)})] for i in range(11)}
    shown = curves_shown(curves)
    assert len(shown) == MAX_CURVES == 8
    assert shown == [f"run {i}" for i in range(3, 11)]  # the 8 with the most epochs, in order
    assert curves_shown({"a": curves["run 0"]}) == ["a"]


def test_numbers_in_tables_have_no_trailing_zeros_and_the_learning_rate_is_not_zero():
    from laperm.analysis import comparisons
    from laperm.book.tables import frame_html, short_float, three_evaluations_display

    assert short_float(18.3) == "18.3" and short_float(0.601) == "0.601"
    assert short_float(0.00001) == "1e-05" and short_float(49114.0) == "49,114"
    html = frame_html(pd.DataFrame({"x": [18.3, 0.601]}))
    assert "18.3000" not in html and ">18.3<" in html
    h = pd.DataFrame({"epoch": [1, 2], "test_accuracy": [0.601, 0.7],
                      "test_accuracy_stale_bn": [0.5, 0.69], "test_accuracy_unsynced": [0.6, 0.7],
                      "learning_rate": [1e-3, 2.5e-5]})
    shown = three_evaluations_display(comparisons.three_evaluations_table(h))
    assert shown["re-estimated"].tolist() == ["60.10%", "70.00%"]
    assert shown["re-estimated − stale (points)"].tolist() == ["+10.10", "+1.00"]  # 60.1 − 50.0
    assert shown["learning rate"].tolist() == ["0.001", "2.5e-05"]


def test_three_evaluations_figure_is_small_multiples_of_at_most_three_a_row():
    import matplotlib.pyplot as plt

    from laperm import viz

    h = pd.DataFrame({"epoch": [1, 2], "test_accuracy": [0.5, 0.6],
                      "test_accuracy_stale_bn": [0.4, 0.6], "test_accuracy_unsynced": [0.5, 0.6]})
    fig = viz.plot_three_evaluations({f"run {i}": h for i in range(5)})
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes}
    assert len(fig.axes) == 5 and len(rows) == 2  # 3 + 2 panels, not 5 in one row
    assert all(ax.get_ylim() == fig.axes[0].get_ylim() for ax in fig.axes)  # shared y
    plt.close(fig)
    # the committed runs' long labels: no panel's title runs into its neighbour's
    titles = ["Conv2 LaPerm s0 (10 ep., standardised input, bf16)",
              "Conv4 LaPerm s0 (5 ep., H200)", "Conv4 LaPerm s0 (9 ep., bf16)"]
    fig = viz.plot_three_evaluations({t: h for t in titles})
    fig.canvas.draw()
    boxes = [ax.title.get_window_extent() for ax in fig.axes]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_three_evaluation_titles_say_the_epochs_once(monkeypatch):
    from laperm.book import runs
    from laperm.book.runs import three_evaluation_histories

    monkeypatch.setattr(runs.records, "run_settings",
                        lambda result: {"experiment": "x", "variant": ""})
    h = pd.DataFrame({"epoch": [1, 2], "test_accuracy_stale_bn": [0.4, 0.6]})
    stored = {"conv4_laperm_s0_e5_h200": (h, {"optimizer": "laperm", "config": {}}),
              "conv2_laperm_s0_bfloat16": (h, {"optimizer": "laperm", "config": {}})}
    assert list(three_evaluation_histories(stored)) == [
        "Conv4 LaPerm s0 (5 ep., H200)", "Conv2 LaPerm s0 (bf16): 2 epochs"]


def test_sawtooth_zoom_never_repeats_the_whole_run():
    import matplotlib.pyplot as plt

    from laperm import viz
    from laperm.viz.sweeps import zoom_periods

    assert zoom_periods(100, 25) == 2  # 4 periods in the run: the zoom shows the last 2
    assert zoom_periods(1000, 25) == 4 and zoom_periods(20, 25) == 1
    steps = pd.DataFrame({"step": list(range(1, 101)) * 2, "accuracy": 0.5,
                          "weights": ["inner"] * 100 + ["synced"] * 100})
    fig = viz.plot_sawtooth_zoom(steps, 25)
    assert fig.axes[1].lines[0].get_xdata().min() == 51  # steps 51-100
    assert "last 2 sync periods" in fig.axes[1].get_title()
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    plt.close(fig)


def _check_pages():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "check_pages.py"
    spec = importlib.util.spec_from_file_location("check_pages", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_browser_check_counts_the_columns_of_a_sections_tables():
    from bs4 import BeautifulSoup

    from laperm.book.tables import frame_html

    check = _check_pages()

    def page(df):
        return BeautifulSoup(f'<div class="cell_output">{frame_html(df)}</div>', "html.parser")

    eight = pd.DataFrame([range(8)], columns=[f"c{i}" for i in range(8)])
    nine = pd.DataFrame([range(9)], columns=[f"c{i}" for i in range(9)])
    assert check.MAX_TABLE_COLUMNS == 8
    assert check.table_column_problems(page(eight)) == []
    (problem,) = check.table_column_problems(page(nine))
    assert "9 columns" in problem and "c0 | c1" in problem
    assert check.table_column_problems(page(nine), None) == []  # page 7.1: the full tables
    assert "07_1_all_records" in check.FULL_TABLE_PAGES
    spanned = BeautifulSoup('<table><tr><th colspan="6">a</th><th colspan="3">b</th></tr>'
                            '<tr><td>1</td></tr></table>', "html.parser")
    assert check.table_columns(spanned.table) == 9
    # a Styler table: the row labels are a column too
    styled = _run_table().iloc[:, :7].style.to_html()
    assert check.table_columns(BeautifulSoup(styled, "html.parser").table) == 8


def test_a_wide_table_is_shown_as_several_each_naming_its_rows(monkeypatch):
    import IPython.display

    from laperm.book import tables
    from laperm.book.page import show_compact

    wide = pd.DataFrame([range(13)], columns=["row"] + [f"c{i}" for i in range(1, 13)])
    chunks = tables.column_chunks(wide)
    assert [list(c.columns) for c in chunks] == [  # 12 columns besides "row": 6 and 6
        ["row"] + [f"c{i}" for i in range(1, 7)], ["row"] + [f"c{i}" for i in range(7, 13)]]
    assert len(tables.column_chunks(wide, None)) == 1
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    tables.show_frame(wide)
    assert len(shown) == 2 and all(s.data.count("<th>") <= 8 for s in shown)
    tables.show_frame(wide, max_columns=None)  # page 7.1: whole
    assert len(shown) == 3 and shown[-1].data.count("<th>") == 13
    tables.show_frame(pd.DataFrame({"implementation": ["a", "b"], "equal": [True, False]}))
    assert "<td>yes</td>" in shown[-1].data and "<td>no</td>" in shown[-1].data
    # show_compact: a labelled index is a column too
    shown.clear()
    labelled = pd.DataFrame([[0.5] * 9] * 4, columns=[f"c{i}" for i in range(9)],
                            index=pd.Index(["a", "b", "c", "d"], name="model"))
    labelled.iloc[:, 0] = [1, 2, 3, 4]
    show_compact(labelled)  # c1-c8 are constant (the caption): 1 column left
    assert len(shown) == 1 and list(shown[0].columns) == ["model", "c0"]  # one header row
    assert 'class="blank' not in shown[0].to_html()  # no index column, no index-name row
    shown.clear()
    labelled.iloc[:, :] = np.arange(36).reshape(4, 9)
    show_compact(labelled)
    assert len(shown) == 2 and [len(s.columns) for s in shown] == [6, 5]  # model + 9 = 5 + 4
    assert all(s.data["model"].tolist() == ["a", "b", "c", "d"] for s in shown)
    shown.clear()
    show_compact(labelled.iloc[:1])  # one row, 9 columns: turned, one row per column
    assert len(shown) == 1 and list(shown[0].columns) == ["", "a"] and len(shown[0].index) == 9


def test_tables_say_settings_not_variant():
    from laperm.analysis.labels import settings_label
    from laperm.book.tables import reader_words

    assert settings_label("cifar_standardize, mixed_bfloat16") == "standardised input, bf16"
    assert settings_label("") == "paper's" and settings_label("–") == "–"
    df = reader_words(pd.DataFrame({"experiment": ["conv2", "conv2"],
                                    "variant": ["", "mixed_bfloat16"]}))
    assert list(df.columns) == ["experiment", "settings"]
    assert df["settings"].tolist() == ["paper's", "bf16"]


def test_stored_curves_keep_one_curve_of_every_model_and_optimizer():
    from laperm.book.page import curves_shown

    def runs(n):
        return [pd.DataFrame({"epoch": range(n)})]

    curves = {f"Conv2 LaPerm ({i} of 125 epochs)": runs(100 + i) for i in range(9)}
    curves.update({"Conv13 Adam (1 of 125 epochs)": runs(1), "Conv13 LaPerm (1 of 125 epochs)": runs(1)})
    shown = curves_shown(curves)
    assert len(shown) == 8
    # both Conv13 curves stay though they are the shortest; then the 6 longest Conv2 ones
    assert shown == [f"Conv2 LaPerm ({i} of 125 epochs)" for i in range(3, 9)] + [
        "Conv13 Adam (1 of 125 epochs)", "Conv13 LaPerm (1 of 125 epochs)"]


def test_the_never_synced_note_names_runs_shortly():
    from laperm.book.runs import unsynced_note

    note = unsynced_note({"resnet50_p70_laperm_s0_e2_f10": "resnet50_p70_laperm_s0_e2_f10: 18 steps"
                                                          " with k = 800"})
    assert note.endswith(": ResNet50 p=70% LaPerm s0 (2 ep., 10% data): 18 steps with k = 800.")


def test_the_results_pages_speed_and_precision_tables_read_without_jargon():
    from laperm.book.tables import precision_check_display, speedup_display

    check = pd.DataFrame({"precision": ["float32", "mixed_bfloat16"], "seeds": ["0, 1"] * 2,
                          "mean": [0.601, 0.612], "seed spread (points)": [0.2, 3.8],
                          "bfloat16 - float32 (points)": [None, 1.1],
                          "within seed spread": [None, True]})
    shown = precision_check_display(check)
    assert shown["mean"].tolist() == ["60.10%", "61.20%"]
    assert shown["seed spread (points)"].tolist() == ["0.20", "3.80"]
    assert shown["bfloat16 − float32 (points)"].tolist() == ["—", "+1.10"]
    assert shown["within seed spread"].tolist() == ["—", "yes"]
    summary = pd.DataFrame({"model": ["conv2"], "fastest way": ["fused kernels"],
                            "images/s": [1006.64], "x previous release": [2.13],
                            "x default": [2.09], "meets 2x": [True]})
    shown = speedup_display(summary)
    assert "meets 2x" not in shown and shown["reaches the 2x target"].tolist() == ["yes"]
    assert shown["images/s"].tolist() == ["1,007"]
    assert shown["speed-up over the default"].tolist() == ["2.09x"]


def test_show_compact_counts_every_level_of_the_row_labels(monkeypatch):
    import IPython.display

    from laperm.book.page import show_compact

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    index = pd.MultiIndex.from_tuples([(f"layer {i}", "kernel") for i in range(4)])
    scores = pd.DataFrame(np.arange(28).reshape(4, 7) / 7, index=index,
                          columns=[f"s{i}" for i in range(7)])
    show_compact(scores)  # 2 label columns + 7 = 9: two tables of 2 + 4 and 2 + 3
    assert [len(s.columns) for s in shown] == [6, 5]
    assert all(list(s.columns[:2]) == ["", " "] for s in shown)  # blank headers, one row


def test_show_compact_shows_accuracies_as_percentages_turned_or_not(monkeypatch):
    import re

    import IPython.display

    from laperm.book.page import show_compact

    def cells(style):
        return re.findall(r">([^<>]+)</td>", style.to_html())

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    wide = pd.DataFrame([[0.6012, "61.00% (4)"] + [i / 10 for i in range(7)]],
                        columns=["accuracy", "best (step)"] + [f"s{i}" for i in range(7)],
                        index=pd.Index(["F2"], name="model"))
    show_compact(wide, percent=["accuracy"])  # one row, 10 columns: turned
    assert cells(shown[-1])[:6] == ["accuracy", "60.12%", "best (step)", "61.00% (4)", "s0",
                                    "0.000"]
    show_compact(wide.iloc[:, :3], percent=["accuracy"])  # as it is
    assert cells(shown[-1]) == ["F2", "60.12%", "61.00% (4)", "0.000"]
