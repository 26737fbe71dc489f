"""Tables built from stored result records."""

from __future__ import annotations

import pytest

from laperm import records
from laperm.experiment import paper_config, run


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("records")
    for seed in (0, 1):
        cfg = paper_config("f1", epochs=2, train_fraction=0.02, validation_size=500,
                           sync_period=7, seed=seed)
        run(cfg, root / f"f1_laperm_s{seed}", data_dir=data_dir, progress=False)
    run(cfg.adam_baseline(), root / "f1_adam_s1", data_dir=data_dir, progress=False)
    return root


def test_records_and_seed_summary(runs_root):
    df = records.load_records(runs_root)
    assert len(df) == 3 and set(df["optimizer"]) == {"laperm", "adam"}
    assert set(df["experiment"]) == {"f1"}
    summary = records.seed_summary(df)
    laperm_row = summary[summary["optimizer"] == "laperm"].iloc[0]
    assert laperm_row["seeds"] == 2 and laperm_row["k"] == 7
    assert summary[summary["optimizer"] == "adam"]["k"].isna().all()


def test_hazard_table(runs_root):
    h = records.hazard_table(runs_root)
    assert len(h) == 3
    assert (h["optimism_of_choosing_on_test"] >= 0).all()  # max over epochs >= chosen
    lp = h[h["optimizer"] == "laperm"]
    assert lp["mean_synced_minus_unsynced"].notna().all()
    hist = records.load_histories(runs_root)
    assert {"run", "optimizer", "test_accuracy_unsynced"} <= set(hist)


def test_empty_root(tmp_path):
    assert records.load_records(tmp_path / "none").empty
    assert records.hazard_table(tmp_path).empty


def test_run_settings_and_stored_runs(runs_root, tmp_path):
    found = records.stored_runs(["f1"], runs_root)
    assert sorted(found) == ["f1_adam_s1", "f1_laperm_s0", "f1_laperm_s1"]
    history, result = found["f1_laperm_s0"]
    assert len(history) == 2
    s = records.run_settings(result)
    assert (s["experiment"], s["optimizer"], s["k"], s["p"], s["seed"]) == ("f1", "laperm", 7, 0.0, 0)
    assert s["is_reduced"] and s["scale"].startswith("reduced")
    assert records.run_settings(found["f1_adam_s1"][1])["k"] is None
    # A folder whose config names another experiment is not taken for this one.
    assert records.stored_runs(["f1_k"], runs_root) == {}
    assert records.stored_runs(["f1"], tmp_path / "missing") == {}


def test_results_table_and_zero_fraction(runs_root):
    found = records.stored_runs(["f1"], runs_root)
    table = records.results_table(found)
    assert list(table.index) == list(found)
    lp = table.loc["f1_laperm_s0"]
    assert lp["k"] == 7 and lp["syncs"] > 0 and lp["paper"] == pytest.approx(0.8546)
    adam = table.loc["f1_adam_s1"]
    assert adam["optimizer"] == "Adam" and adam["paper"] != adam["paper"]  # NaN for Adam
    # F1's shared-value init keeps 60% of the weights: p is measured, about 0.4.
    assert lp["p"] == pytest.approx(records.zero_fraction(found["f1_laperm_s0"][1]))
    assert 0.3 < lp["p"] < 0.5
    assert records.zero_fraction({"init_tables": {}}) == 0.0


def test_paper_coverage(runs_root):
    cov = records.paper_coverage(records.load_records(runs_root)).set_index("experiment")
    from laperm.experiment import PAPER_ACCURACY

    assert list(cov.index) == list(PAPER_ACCURACY)  # every row of the paper's table
    f1 = cov.loc["f1"]
    assert f1["seeds"] == 2 and f1["scale"].startswith("reduced") and f1["source"] == "records"
    assert 0 <= f1["laperm"] <= 1 and 0 <= f1["adam"] <= 1
    # 10 paper epochs of the full training set at the measured rate.
    assert f1["images_per_s"] > 0 and f1["paper_scale_hours"] > 0
    assert cov.loc["conv13"][["laperm", "adam", "paper_scale_hours"]].isna().all()
    assert cov.loc["conv13"]["seeds"] == 0


def test_show_stored_runs(runs_root, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from laperm import book

    shown = book.show_stored_runs(["f1"], root=runs_root)
    assert sorted(shown) == ["f1_adam_s1", "f1_laperm_s0", "f1_laperm_s1"]
    assert book.show_stored_runs(["conv2"], root=tmp_path) == {}
    plt.close("all")
