"""What the pages say about their own runs is computed from the runs.

Each test guards one kind of contradiction a reader found in the rendered
book: a "seeds" title over single-seed runs, a "reduced" banner over runs at
the paper's settings, "GPU" over CPU runs, a k printed for Adam.
"""

from __future__ import annotations

from laperm import book
from laperm.book.page import hardware_label, scale_summary, stored_runs_title
from laperm.experiment import paper_config


def _record(reduced: bool, accelerator="none (CPU)"):
    return {"scale": {"is_reduced": reduced}, "hardware": {"accelerator": accelerator,
                                                           "cpu_count": 2}}


def test_seed_band_is_mentioned_only_over_several_seeds():
    one = stored_runs_title([_record(False)], {"conv7 LaPerm": ["h0"]})
    assert "seeds" not in one
    several = stored_runs_title([_record(False)] * 3, {"f1 LaPerm": ["h0", "h1", "h2"]})
    assert "several seeds" in several


def test_stored_runs_title_names_the_scale_and_hardware_of_the_records():
    assert "reduced; CPU, 2 cores" in stored_runs_title([_record(True)], {"a": [1]})
    assert "paper scale;" in stored_runs_title([_record(False)], {"a": [1]})
    mixed = stored_runs_title([_record(False), _record(True, "NVIDIA H200")], {"a": [1], "b": [2]})
    assert "paper scale and reduced" in mixed and "NVIDIA H200" in mixed and "GPU" not in mixed
    assert hardware_label({"accelerator": "none (CPU)", "cpu_count": 16}) == "CPU, 16 cores"


def test_banner_scale_comes_from_the_runs_of_the_page():
    assert scale_summary([]) is None
    assert scale_summary(["paper scale", "paper scale"]) == "paper scale (all 2 runs)"
    reduced = scale_summary(["reduced: 1 of 10 epochs", "reduced: 1 of 10 epochs"])
    assert reduced.startswith("reduced") and "paper scale" not in reduced
    assert "1 of 2 runs at paper scale" in scale_summary(["paper scale", "reduced: 1 of 10 epochs"])
    sec = book.setup("x", "cpu", {p: {} for p in book.PROFILE_NAMES}, {}, show_banner=False)
    sec.run_scales += ["paper scale"]
    text = book.banner_text(sec)
    assert "Scale: **paper scale (1 run)**" in text and "reduced runs" not in text


def test_a_plain_adam_config_has_no_sync_period_in_its_description():
    adam = paper_config("f2").adam_baseline()
    assert adam.optimizer == "adam"
    text = adam.describe()
    assert "k =" not in text and "Adam" in text
    assert "k = 250" in paper_config("f2").describe()


def test_constant_columns_become_the_caption():
    import numpy as np
    import pandas as pd

    from laperm.book.page import split_constant_columns

    df = pd.DataFrame({"optimizer": ["Adam", "Adam"], "k": [20.0, 20.0],
                       "test acc at best val": [0.9, 0.95]})
    rest, caption = split_constant_columns(df)
    assert list(rest.columns) == ["test acc at best val"]
    assert caption == "optimizer: Adam; k: 20"
    one_row, caption = split_constant_columns(df.iloc[:1])
    assert list(one_row.columns) == list(df.columns) and caption == ""
    # a float32 value read back as a float is shown to six significant digits
    lr = pd.DataFrame({"learning rate": [float(np.float32(0.001))] * 2, "epoch": [1, 5]})
    assert split_constant_columns(lr)[1] == "learning rate: 0.001"


def test_long_run_names_may_break_after_underscores(monkeypatch):
    """A table of many runs must fit the page: its run names get break points."""
    import pandas as pd
    from IPython import display as ipd

    from laperm.book.page import show_table

    shown = []
    monkeypatch.setattr(ipd, "display", lambda obj: shown.append(obj))
    df = pd.DataFrame({"optimizer": ["Adam", "LaPerm"], "test acc at best val": [0.7, 0.8]},
                      index=pd.Index(["conv2_adam_s0_e65", "conv2_<x>_s1"], name="run"))
    show_table(df)
    html = shown[0].to_html()
    assert "conv2_<wbr>adam_<wbr>s0_<wbr>e65" in html
    assert "conv2_<wbr>&lt;x&gt;_<wbr>s1" in html  # the names themselves are escaped
    assert "70.00%" in html
    # the run names are the first column, under their name: one header row, no index
    assert list(shown[0].data.columns) == ["run", "optimizer", "test acc at best val"]
    assert html.count("<tr>") == 3 and "index_name" not in html
    shown.clear()
    show_table(pd.DataFrame({"implementation": ["a", "b"], "equal": [True, False]}))
    assert shown[0].data["equal"].tolist() == ["yes", "no"]  # never True/False
    assert 'class="row_heading' not in shown[0].to_html()  # no 0, 1 index column
