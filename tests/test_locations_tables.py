"""Section 3's table, notes and figure (laperm.analysis.locations, laperm.viz.locations)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laperm import viz  # noqa: E402
from laperm.analysis import locations  # noqa: E402


def _result(biases: bool = False) -> locations.Result:
    curve = pd.DataFrame({
        "step": [0, 10, 100],
        "theta_t": [0.1, 0.8, 0.9],
        "repermuted theta_0": [0.1, 0.6, 0.5],
        "rank correlation with theta_0": [1.0, 0.9, 0.8],
        "relative value change": [0.0, 0.1, 0.3]})
    if biases:
        curve["repermuted theta_0 (biases too)"] = [0.1, 0.55, 0.45]
    return locations.Result(curve=curve, random_acc=0.11, scale="tiny", n_test=1000)


def test_summary_table_from_a_hand_made_curve():
    table = locations.summary_table({"f2": _result(), "conv7": _result(biases=True)})
    assert table.index.tolist() == ["F2", "Conv7"]
    f2 = table.loc["F2"]
    assert f2["steps"] == 100 and f2["θ0"] == 0.1 and f2["random permutation of θ0"] == 0.11
    assert f2["θt (Adam)"] == 0.9 and f2["re-permuted θ0"] == 0.5
    assert f2["best repermuted (step)"] == "60.00% (10)"
    assert set(locations.ACCURACY_COLUMNS) <= set(table.columns)
    assert f2["rank correlation with θ0"] == 0.8 and f2["relative value change"] == 0.3
    assert table.loc["Conv7", "re-permuted θ0 (biases too)"] == 0.45
    assert pd.isna(f2["re-permuted θ0 (biases too)"])


def test_run_note_reports_an_early_peak_beyond_twice_the_standard_error():
    # se of 90% on 1000 images: 0.95 points; se of a difference at 50%: √2 · 1.58 = 2.24 points
    assert locations.run_note("f2", _result()) == (
        "**F2:** at the last checkpoint the re-permuted network is 40.00 points below theta_t "
        "(standard error of each accuracy about 0.95 points on 1,000 test images). Its best "
        "point was 60.00% at step 10, when θt had 80.00% and the kernel values had moved by "
        "10% of θ0's norm (at the end: 30%). It peaked **before** the end of training, 10.00 "
        "points above its last value (more than twice the 2.24-point standard error of that "
        "difference): re-permuting later, after the values had drifted further, kept less of "
        "Adam's accuracy in this run.")


def test_run_note_within_the_error_and_at_the_end():
    small = _result()
    small.curve.loc[2, "repermuted theta_0"] = 0.59  # 1 point below the peak: within the error
    assert locations.run_note("f2", small).endswith(
        "Its best point is 1.00 points above its last, within twice the 2.20-point standard "
        "error of that difference.")
    last = _result()
    last.curve.loc[2, "repermuted theta_0"] = 0.7  # the best point is the last
    note = locations.run_note("f2", last)
    assert note.endswith("(at the end: 30%).") and "20.00 points below" in note


def test_plot_repermutation_one_row_per_model():
    fig = viz.plot_repermutation({"f2": _result(), "conv7": _result(biases=True)})
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "F2: test accuracy while Adam trains"
    assert fig.axes[3].get_title() == "Conv7: how far θt is from θ0 (kernels)"
    assert fig.axes[0].get_xscale() == "symlog"
    assert fig.axes[0].get_xlim()[1] == pytest.approx(130)
    plt.close("all")
