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
