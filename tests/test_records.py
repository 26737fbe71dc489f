"""Tables built from stored result records.

The records are small synthetic ones, written in the layout
:func:`laperm.experiment.run` uses (``config.json``, ``result.json``,
``history.csv``), so these tests train nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laperm import book
from laperm.analysis import comparisons, records, speed
from laperm.analysis.comparisons import comparison_table
from laperm.book import findings
from laperm.experiment import PAPER_ACCURACY, paper_config

N_FULL_TRAIN = 55_000


def write_run(folder, cfg, accuracies, wall_time_s=20.0, accelerator="none (CPU)"):
    """A finished run's files for ``cfg``: one history row per ``(val, test)`` accuracy."""
    folder.mkdir(parents=True)
    epochs = len(accuracies)
    laperm = cfg.optimizer == "laperm"
    history = pd.DataFrame({
        "epoch": np.arange(1, epochs + 1),
        "val_accuracy": [v for v, _ in accuracies],
        "test_accuracy": [t for _, t in accuracies],
        "test_accuracy_unsynced": [t + 0.01 if laperm else np.nan for _, t in accuracies],
        "sync_count": [3 * e if laperm else 0 for e in range(1, epochs + 1)],
    })
    history.to_csv(folder / "history.csv", index=False)
    best = int(history["val_accuracy"].idxmax())
    n_train = int(N_FULL_TRAIN * cfg.train_fraction)
    result = {
        "name": cfg.name, "config": cfg.to_dict(), "config_hash": cfg.hash,
        "optimizer": cfg.optimizer,
        "scale": {"label": cfg.scale_label, "is_reduced": cfg.is_reduced, "epochs_run": epochs,
                  "paper_epochs": cfg.paper_epochs, "train_fraction": cfg.train_fraction,
                  "n_train": n_train, "n_val": 500, "n_test": 10000},
        "test_set": "the full mnist test set (10000 images)",
        "final_test_accuracy": float(history["test_accuracy"].iloc[-1]),
        "best_epoch": best + 1,
        "best_val_accuracy": float(history["val_accuracy"].iloc[best]),
        "test_accuracy_at_best_val": float(history["test_accuracy"].iloc[best]),
        "best_test_accuracy_any_epoch": float(history["test_accuracy"].max()),
        "paper_accuracy": PAPER_ACCURACY.get(cfg.name),
        "wall_time_s": wall_time_s,
        "init_tables": {"shared_value": [{"variable": "dense/kernel", "size": 7840,
                                          "nonzero": 4704}]},
        "hardware": {"cpu_count": 2, "accelerator": accelerator},
        "date": "2026-01-01T00:00:00+00:00", "commit": "0" * 40,
    }
    (folder / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
    (folder / "result.json").write_text(json.dumps(result))
    return history, result


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """Two seeds of a reduced F1 LaPerm run (k = 7) and one Adam baseline."""
    root = tmp_path_factory.mktemp("records")
    for seed, accs in ((0, [(0.70, 0.71), (0.80, 0.79)]), (1, [(0.75, 0.77), (0.74, 0.78)])):
        cfg = paper_config("f1", epochs=2, train_fraction=0.02, validation_size=500,
                           sync_period=7, seed=seed)
        write_run(root / f"f1_laperm_s{seed}", cfg, accs)
    write_run(root / "f1_adam_s1", cfg.adam_baseline(), [(0.85, 0.84), (0.86, 0.86)])
    return root


def test_records_and_seed_summary(runs_root):
    df = records.load_records(runs_root)
    assert len(df) == 3 and set(df["optimizer"]) == {"laperm", "adam"}
    assert set(df["experiment"]) == {"f1"} and set(df["paper_experiment"]) == {"f1"}
    summary = comparisons.seed_summary(df)
    laperm_row = summary[summary["optimizer"] == "laperm"].iloc[0]
    assert laperm_row["seeds"] == 2 and laperm_row["k"] == 7
    assert laperm_row["test_at_best_val_mean"] == pytest.approx((0.79 + 0.77) / 2)
    assert summary[summary["optimizer"] == "adam"]["k"].isna().all()


def test_hazard_table(runs_root):
    h = comparisons.hazard_table(runs_root)
    assert len(h) == 3
    assert (h["optimism_of_choosing_on_test"] >= 0).all()  # max over epochs >= chosen
    s1 = h.set_index("run").loc["f1_laperm_s1"]
    assert s1["optimism_of_choosing_on_test"] == pytest.approx(0.01)
    lp = h[h["optimizer"] == "laperm"]
    assert lp["mean_synced_minus_unsynced"].notna().all()
    assert lp["mean_synced_minus_unsynced"].to_numpy() == pytest.approx([-0.01, -0.01])
    assert set(h["precision"]) == {"float32"}  # the page never averages over precisions
    hist = records.load_histories(runs_root)
    assert {"run", "optimizer", "test_accuracy_unsynced"} <= set(hist)


def test_empty_root(tmp_path):
    assert records.load_records(tmp_path / "none").empty
    assert comparisons.hazard_table(tmp_path).empty
    assert records.load_sources({"a": tmp_path / "none"}).empty
    assert comparisons.comparison_table(records.load_records(tmp_path)).empty


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
    table = comparisons.results_table(found)
    assert list(table.index) == list(found)
    lp = table.loc["f1_laperm_s0"]
    assert lp["k"] == 7 and lp["syncs"] == 6 and lp["paper"] == pytest.approx(0.8546)
    adam = table.loc["f1_adam_s1"]
    assert adam["optimizer"] == "Adam" and adam["paper"] != adam["paper"]  # NaN for Adam
    # F1's shared-value init keeps 60% of the weights: p is measured, 0.4.
    assert lp["p"] == pytest.approx(records.zero_fraction(found["f1_laperm_s0"][1]))
    assert lp["p"] == pytest.approx(0.4)
    assert records.zero_fraction({"init_tables": {}}) == 0.0
    assert lp["paper row"] == "f1" and lp["seed"] == 0 and adam["seed"] == 1


def test_a_laperm_run_that_never_synced_has_no_paper_number(tmp_path):
    # 2 epochs of 2% of F1's training images (1,100 in batches of 128): 18 steps < k = 250.
    cfg = paper_config("f1", epochs=2, train_fraction=0.02, validation_size=500, seed=0)
    runs = {"early": write_run(tmp_path / "early", cfg, [(0.7, 0.7), (0.8, 0.8)]),
            "adam": write_run(tmp_path / "adam", cfg.adam_baseline(), [(0.8, 0.81), (0.9, 0.9)])}
    table = comparisons.results_table(runs)
    assert table.loc["early", "steps"] == 18 < cfg.sync_period
    assert table.loc["early", "optimizer"] == records.NEVER_SYNCED
    assert table.loc["early", "paper"] != table.loc["early", "paper"]  # NaN
    # ... and no LaPerm − Adam sentence is made of it.
    lines = findings.run_findings(table)
    assert len(lines) == 2 and not any(" − " in line for line in lines)


def test_run_findings_pair_laperm_with_adam_of_the_same_row_and_seed(runs_root, tmp_path):
    found = records.stored_runs(["f1"], runs_root)
    f2 = paper_config("f2", epochs=2, train_fraction=0.02, validation_size=500, seed=0)
    found["f2_adam_s0"] = write_run(tmp_path / "f2_adam_s0", f2.adam_baseline(),
                                    [(0.5, 0.5), (0.6, 0.6)])
    lines = findings.run_findings(comparisons.results_table(found))
    gaps = [line for line in lines if " − " in line]
    # Only f1_laperm_s1 has an Adam run of its row and seed (f1_adam_s1): 0.77 − 0.86.
    assert gaps == ["f1_laperm_s1 − f1_adam_s1: -9.00 points at the same scale and seed."]


def test_paper_coverage(runs_root):
    cov = comparisons.paper_coverage(records.load_records(runs_root)).set_index("experiment")
    assert list(cov.index) == list(PAPER_ACCURACY)  # every row of the paper's table
    f1 = cov.loc["f1"]
    assert f1["seeds"] == 2 and f1["scale"].startswith("reduced") and f1["source"] == "records"
    assert f1["laperm"] == pytest.approx(0.78) and f1["adam"] == pytest.approx(0.86)
    # 10 paper epochs of the full training set at the measured rate.
    images_per_s = 3 * 2 * 1100 / 60
    assert f1["images_per_s"] == pytest.approx(images_per_s)
    assert f1["paper_scale_hours"] == pytest.approx(N_FULL_TRAIN * 10 / images_per_s / 3600)
    assert cov.loc["conv13"][["laperm", "adam", "paper_scale_hours"]].isna().all()
    assert cov.loc["conv13"]["seeds"] == 0


def test_paper_experiment_of_a_config():
    assert records.paper_experiment(paper_config("conv7_k20").to_dict()) == "conv7"
    assert records.paper_experiment(paper_config("resnet50_p30").to_dict()) == "resnet50_p30"
    assert records.paper_experiment(paper_config("f2_per_unit").to_dict()) is None
    assert records.paper_experiment({"model": "conv7", "dataset": "cifar10"}) is None


def test_comparison_table_and_sources(runs_root, tmp_path):
    other = tmp_path / "build"
    write_run(other / "f1_laperm_s0", paper_config("f1", epochs=1, train_fraction=0.02, seed=0),
              [(0.5, 0.6)])
    both = records.load_sources({"committed": runs_root, "this build": other})
    assert list(both["source"]) == ["committed"] * 3 + ["this build"]
    table = comparisons.comparison_table(both[both["source"] == "committed"])
    assert list(table["optimizer"]) == ["adam", "laperm"]
    lp = table.set_index("optimizer").loc["laperm"]
    assert lp["seeds"] == 2 and lp["k"] == "7" and lp["paper"] == "85.46%"
    assert lp["ours (± sd)"] == f"78.00% ± {np.std([0.79, 0.77], ddof=1) * 100:.2f}"
    assert lp["deviation (points)"] == f"{(0.78 - 0.8546) * 100:+.2f}"
    assert lp["scale"] == "2/10 ep., 1,100 images" and lp["chosen on test"] == "78.50%"
    adam = table.set_index("optimizer").loc["adam"]
    assert adam["paper"] == "–" and adam["deviation (points)"] == "–" and adam["k"] == "–"
    final = comparisons.comparison_table(both, metric="final_test_accuracy")
    assert "60.00%" in set(final["ours (± sd)"])


def test_unfinished_runs(runs_root, tmp_path):
    assert records.unfinished_runs(runs_root) == []
    folder = tmp_path / "conv7_laperm_s0"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"config": {"epochs": 45}}))
    pd.DataFrame({"epoch": [1, 2]}).to_csv(folder / "history.csv", index=False)
    assert records.unfinished_runs(tmp_path) == [
        {"run": "conv7_laperm_s0", "epochs_done": 2, "epochs": 45}]


def test_show_stored_runs(runs_root, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = book.show_stored_runs(["f1"], root=runs_root)
    assert sorted(shown) == ["f1_adam_s1", "f1_laperm_s0", "f1_laperm_s1"]
    assert book.show_stored_runs(["conv2"], root=tmp_path) == {}
    plt.close("all")


def test_variants_are_kept_apart(tmp_path):
    """A run on another input or precision never counts for the paper's row, nor
    is it averaged with the runs of the paper's settings."""
    base = dict(epochs=2, train_fraction=0.02, validation_size=500, sync_period=7)
    paper = paper_config("f1", **base)
    other_input = paper_config("f1", preprocessing="cifar_standardize", **base)
    both = paper_config("f1", preprocessing="cifar_standardize", precision="mixed_bfloat16",
                        **base)
    write_run(tmp_path / "f1_laperm_s0", paper, [(0.70, 0.71), (0.80, 0.79)])
    write_run(tmp_path / "f1_laperm_s1", paper.replace(seed=1), [(0.80, 0.75), (0.70, 0.72)])
    write_run(tmp_path / "std_s0", other_input, [(0.85, 0.90), (0.90, 0.91)])
    write_run(tmp_path / "std_s1", other_input.replace(seed=1), [(0.90, 0.93), (0.80, 0.80)])
    write_run(tmp_path / "std_bf16", both, [(0.90, 0.60), (0.80, 0.50)])
    # the largest run of all, but on another input: not the paper's row
    write_run(tmp_path / "std_full", paper_config("f1", preprocessing="cifar_standardize"),
              [(0.99, 0.99)] * 10)
    df = records.load_records(tmp_path)
    by_run = df.set_index("run")
    assert by_run.loc["f1_laperm_s0", "variant"] == "" and by_run.loc["f1_laperm_s0", "paper_input"]
    assert by_run.loc["std_s0", "variant"] == "cifar_standardize"
    assert by_run.loc["std_bf16", "variant"] == "cifar_standardize, mixed_bfloat16"
    assert not by_run.loc["std_full", "paper_input"]

    f1 = comparisons.paper_coverage(df).set_index("experiment").loc["f1"]
    assert f1["seeds"] == 2 and f1["laperm"] == pytest.approx((0.79 + 0.75) / 2)
    assert f1["scale"].startswith("reduced")

    table = comparisons.comparison_table(df)
    seeds = dict(zip(table["run"] + " / " + table["scale"], table["seeds"]))
    assert seeds == {"f1 / 2/10 ep., 1,100 images": 2,
                     "f1 (cifar_standardize) / 2/10 ep., 1,100 images": 2,
                     "f1 (cifar_standardize) / paper scale": 1,
                     "f1 (cifar_standardize, mixed_bfloat16) / 2/10 ep., 1,100 images": 1}

    inputs = comparisons.input_comparison(df)
    row = inputs[(inputs["precision"] == "float32") & inputs["scale"].str.startswith("reduced")]
    assert len(row) == 1
    row = row.iloc[0]
    assert (row["input"], row["paper_input_name"]) == ("cifar_standardize", "scale01")
    assert (row["seeds"], row["seeds_paper_input"]) == (2, 2) and row["k"] == 7
    assert row["difference"] == pytest.approx((0.91 + 0.93) / 2 - (0.79 + 0.75) / 2)
    # no run with the paper's input at bfloat16 or at the paper's scale: nothing to compare
    alone = inputs[(inputs["precision"] != "float32") | (inputs["scale"] == "paper scale")]
    assert len(alone) == 2 and alone["accuracy_paper_input"].isna().all()
    assert comparisons.input_comparison(df[df["paper_input"]]).empty
    assert comparisons.input_comparison(pd.DataFrame()).empty


def test_the_precision_check_compares_runs_of_the_paper_input(tmp_path):
    base = dict(epochs=10, kernels="fused")
    for seed in (0, 1):
        for precision, acc in (("float32", 0.60), ("mixed_bfloat16", 0.61)):
            cfg = paper_config("conv2", precision=precision, seed=seed, **base)
            write_run(tmp_path / f"{precision}_s{seed}", cfg, [(acc, acc)] * 10)
        cfg = paper_config("conv2", preprocessing="cifar_standardize", precision="mixed_bfloat16",
                           seed=seed, **base)
        write_run(tmp_path / f"a_std_s{seed}", cfg, [(0.9, 0.9)] * 10)  # listed first
    check = speed.precision_check(records.load_records(tmp_path)).set_index("precision")
    assert check.loc["mixed_bfloat16", "mean"] == pytest.approx(0.61)


def test_an_adam_baseline_shares_scale_precision_and_device(tmp_path):
    """A LaPerm run is set beside Adam runs of its scale, precision and device only."""
    base = dict(train_fraction=0.02, validation_size=500, sync_period=7)
    bf16 = dict(base, precision="mixed_bfloat16")
    write_run(tmp_path / "laperm_bf16_e3", paper_config("f1", epochs=3, **bf16),
              [(0.70, 0.71)] * 3)
    write_run(tmp_path / "adam_e3", paper_config("f1", epochs=3, **base).adam_baseline(),
              [(0.80, 0.80)] * 3)  # float32: not its baseline
    write_run(tmp_path / "adam_bf16_e4", paper_config("f1", epochs=4, **bf16).adam_baseline(),
              [(0.90, 0.95)] * 4)  # another scale: not its baseline
    write_run(tmp_path / "adam_bf16_e3_gpu", paper_config("f1", epochs=3, **bf16).adam_baseline(),
              [(0.90, 0.95)] * 3, accelerator="NVIDIA H200")  # another device
    assert comparisons.laperm_adam_pairs(records.load_records(tmp_path)).empty
    write_run(tmp_path / "adam_bf16_e3", paper_config("f1", epochs=3, **bf16).adam_baseline(),
              [(0.85, 0.85)] * 3)
    pairs = comparisons.laperm_adam_pairs(records.load_records(tmp_path))
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row["experiment"], row["variant"], row["seeds"], row["device"]) == (
        "f1", "mixed_bfloat16", 1, "CPU")
    assert row["Adam"] == pytest.approx(0.85) and row["LaPerm"] == pytest.approx(0.71)
    assert row["LaPerm − Adam (points)"] == pytest.approx(-14.0)
    assert comparisons.laperm_adam_pairs(pd.DataFrame()).empty


def test_the_last_epoch_is_compared_with_batchnorm_statistics_treated_alike(tmp_path):
    """LaPerm (re-estimated / stale) against Adam (re-estimated at the end / as
    trained), same scale only; runs without these measurements are left out."""
    def with_final(folder, cfg, test, **final):
        write_run(folder, cfg, [(0.7, test)] * 2)
        result = json.loads((folder / "result.json").read_text())
        (folder / "result.json").write_text(json.dumps({**result, **final}))

    cfg = paper_config("conv2", epochs=2, train_fraction=0.1, sync_period=100)
    with_final(tmp_path / "laperm", cfg, 0.70, final_test_accuracy_stale_bn=0.60)
    with_final(tmp_path / "adam", cfg.adam_baseline(), 0.75,
               final_test_accuracy_recalibrated_bn_adam=0.78)
    with_final(tmp_path / "adam_old", cfg.adam_baseline(), 0.99)  # not re-estimated: left out
    table = comparisons.final_epoch_batchnorm_pairs(records.load_records(tmp_path))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["LaPerm re-estimated"], row["LaPerm stale"]) == pytest.approx((0.70, 0.60))
    assert (row["Adam re-estimated"], row["Adam as trained"]) == pytest.approx((0.78, 0.75))
    assert row["Adam: re-estimated − as trained (points)"] == pytest.approx(3.0)
    assert row["LaPerm − Adam, both re-estimated (points)"] == pytest.approx(-8.0)
    assert row["LaPerm − Adam, neither (points)"] == pytest.approx(-15.0)
    (tmp_path / "adam" / "result.json").unlink()  # no Adam run with the measurement left
    assert comparisons.final_epoch_batchnorm_pairs(records.load_records(tmp_path)).empty
    assert comparisons.final_epoch_batchnorm_pairs(pd.DataFrame()).empty


def test_a_long_run_at_both_precisions_is_compared_epoch_by_epoch(tmp_path):
    def curve(n, offset):
        return [(0.5 + 0.01 * e, 0.5 + 0.01 * e + offset) for e in range(n)]

    write_run(tmp_path / "f32_e30", paper_config("conv2", epochs=30), curve(30, 0.0))
    write_run(tmp_path / "bf16_e25", paper_config("conv2", epochs=25, kernels="fused",
                                                  precision="mixed_bfloat16"),
              curve(25, 0.02))
    write_run(tmp_path / "bf16_s1_e40", paper_config("conv2", epochs=40, seed=1,
                                                     precision="mixed_bfloat16"),
              curve(40, 0.5))  # another seed: never compared with seed 0
    write_run(tmp_path / "f32_std", paper_config("conv2", epochs=40,  # another input
                                                 preprocessing="cifar_standardize"),
              curve(40, 0.5))
    df, hist = records.load_records(tmp_path), records.load_histories(tmp_path)
    table = speed.precision_over_training(df, hist)
    assert list(table["epoch"]) == list(range(1, 26))
    assert table["difference (points)"].to_numpy() == pytest.approx(2.0)
    assert (table.attrs["float32_run"], table.attrs["mixed_bfloat16_run"]) == ("f32_e30",
                                                                                "bf16_e25")
    assert table.attrs["mixed_bfloat16_kernels"] == "fused" and table.attrs["seed"] == 0
    summary = speed.precision_over_training_summary(table)
    assert summary["epochs"] == 25 and summary["mean_last_10"] == pytest.approx(2.0)
    assert summary["sd"] == pytest.approx(0.0, abs=1e-9)
    assert speed.precision_over_training(df, hist, min_epochs=26) is None
    assert speed.precision_over_training(df, hist, optimizer="adam") is None
    assert speed.precision_over_training(pd.DataFrame(), hist) is None


def test_the_all_records_table_names_a_laperm_run_without_a_sync():
    """A LaPerm run stopped before its first sync is listed as such, with no paper number."""
    import pandas as pd

    base = {"paper_experiment": "conv13", "experiment": "conv13", "variant": "", "k": 1000,
            "epochs_run": 1, "paper_epochs": 125, "n_train": 4500, "scale": "reduced",
            "test_accuracy_at_best_val": 0.3, "best_test_accuracy_any_epoch": 0.31,
            "n_test": 1000, "wall_time_s": 60.0}
    records = pd.DataFrame([{**base, "optimizer": "laperm", "synced": False},
                            {**base, "optimizer": "adam", "synced": True}])
    t = comparison_table(records)
    assert sorted(t["optimizer"]) == ["adam", "laperm (never synced)"]
    assert set(t["paper"]) == {"–"}


def test_the_papers_table_with_its_settings():
    from laperm import paper

    table = paper.settings_table()
    assert len(table) == len(paper.TABLE)
    resnet70 = table.iloc[[r.experiment for r in paper.TABLE].index("resnet50_p70")]
    assert (resnet70["row"], resnet70["data"], resnet70["k"], resnet70["epochs"]) == (
        "ResNet50, p = 70%", "CIFAR-10", 800, 200)
    assert table.iloc[0]["row"] == "Conv7" and table.iloc[0]["paper top-1"] == 0.9972


def test_the_appendix_names_the_paper_row_a_run_counts_for():
    committed = Path(__file__).resolve().parents[1] / "results"
    runs = set(comparisons.records_table(records.load_records(committed))["run"])
    assert {"conv7", "conv7_k20 (row conv7)", "f2_per_unit (no paper row)"} <= runs
