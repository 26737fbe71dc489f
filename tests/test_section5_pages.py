"""The package functions the Section 5 pages (5.1-5.5) call: configs at a page's scale, the
test-set note, the findings, the weight checks, the saw-tooth and the sweep figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laperm import viz  # noqa: E402
from laperm.analysis import comparisons, records, sawtooth, weights  # noqa: E402
from laperm.book import findings, runs  # noqa: E402
from laperm.data import DatasetInfo  # noqa: E402
from laperm.paper import paper_config  # noqa: E402


# ---------------------------------------------------------------- configs at a page's scale


def test_page_configs_scale_every_run_and_place_the_adam_baselines():
    params = dict(epochs=2, train_fraction=0.1, validation_size=None, sync_period=50,
                  model="resnet20", sync_periods=[1, 2])
    assert runs.profile_scale(params) == dict(epochs=2, train_fraction=0.1, sync_period=50)
    configs = runs.page_configs({"conv2 LaPerm k=50": paper_config("conv2"),
                                 "conv4 LaPerm k=50": paper_config("conv4")}, params, adam=True)
    assert list(configs) == ["conv2 LaPerm k=50", "conv2 Adam", "conv4 LaPerm k=50", "conv4 Adam"]
    assert configs["conv2 Adam"] == configs["conv2 LaPerm k=50"].adam_baseline()
    cfg = configs["conv4 LaPerm k=50"]
    assert (cfg.epochs, cfg.train_fraction, cfg.sync_period, cfg.model) == (2, 0.1, 50, "conv4")
    assert cfg.validation_size == paper_config("conv4").validation_size  # None keeps the paper's

    sweep = runs.page_configs({"LaPerm k=20": runs.sync_period_config("conv7", 20)},
                              dict(epochs=1), adam={"Adam": paper_config("conv7")})
    assert list(sweep) == ["LaPerm k=20", "Adam"]
    assert sweep["Adam"].name == "conv7_adam" and sweep["Adam"].epochs == 1
    assert list(runs.page_configs({"a": paper_config("f1")}, {}, adam=False)) == ["a"]


def test_adam_label_drops_everything_from_laperm_on():
    assert runs.adam_label("conv2 LaPerm k=50") == "conv2 Adam"
    assert runs.adam_label("F1 LaPerm") == "F1 Adam"


def test_named_configs_of_the_sweeps():
    assert runs.sync_period_config("conv7", 20).name == "conv7_k20"
    assert runs.sync_period_config("conv7", 1200) == paper_config("conv7")
    k50 = runs.sync_period_config("conv7", 50)
    assert (k50.name, k50.sync_period) == ("conv7_k50", 50)
    dense = runs.dense_f2(10)
    assert (dense.name, dense.sync_period, dense.shared_value, dense.shared_keep) == (
        "f2_dense_k10", 10, None, None)
    assert runs.dense_f2().name == "f2_dense"
    p30 = runs.pruned_config("conv7", 30)
    assert (p30.name, p30.prune_keep) == ("conv7_p30", pytest.approx(0.7))
    assert runs.pruned_config("conv7", 0).prune_keep is None
    assert runs.pruned_config("resnet50", 30) == paper_config("resnet50_p30")
    assert runs.pruned_config("resnet50", 0) == paper_config("resnet50")
    r20 = runs.pruned_config("resnet20", 50)
    assert (r20.model, r20.name, r20.prune_keep) == ("resnet20", "resnet20_p50", pytest.approx(0.5))
    control = runs.mask_control([0, 1], epochs=3)
    assert list(control) == ["F2 paper mask, seed 0", "F2 per-unit mask, seed 0",
                             "F2 paper mask, seed 1", "F2 per-unit mask, seed 1"]
    assert control["F2 per-unit mask, seed 1"].name == "f2_per_unit"
    assert control["F2 per-unit mask, seed 1"].seed == 1
    assert control["F2 paper mask, seed 0"].epochs == 3


def test_config_lines_align_the_labels_and_add_the_details():
    configs = {"F1 LaPerm": paper_config("f1"),
               "Adam p=0%": runs.pruned_config("conv7", 30).adam_baseline()}
    lines = runs.config_lines(configs, ["pruning"])
    assert lines[0] == f"F1 LaPerm: {paper_config('f1').describe()}; dense"
    assert lines[1].startswith("Adam p=0%: conv7_p30_adam: conv7 on mnist, Adam, ")
    assert lines[1].endswith("; keep 0.70")
    shared = runs.config_lines({"F1": paper_config("f1")}, ["shared value", "validation"])[0]
    assert shared.endswith("; v = 0.08, keep = 0.600; validation split 5000 images")


def test_paper_scale_steps_count_the_steps_and_syncs():
    # Conv2: 50000 images / batch 50 = 1000 steps an epoch, 125 epochs, k = 1000
    assert runs.paper_scale_steps("conv2") == (
        "paper scale: 125 epochs of 50,000 images, batch 50: 125,000 steps, 125 syncs with k = 1000")
    # Conv7 without its 5000 validation images: 1100 steps an epoch, 45 epochs, k = 1200
    assert runs.paper_scale_steps("conv7", held_out=5000).endswith(
        "45 epochs of 55,000 images, batch 50: 49,500 steps, 41 syncs with k = 1200")


# ---------------------------------------------------------------- the test-set note


def _info(n_test, name="cifar10"):
    reduced = n_test < 10000
    note = (f"{n_test} exact test images (the first {n_test} of the official 10000)" if reduced
            else f"the full {name} test set ({n_test} images)")
    return DatasetInfo(name=name, source="x", n_train=50000, n_test=n_test, full_test_size=10000,
                       is_reduced_test_set=reduced, test_note=note)


def test_test_set_note_gives_the_standard_error_of_a_reduced_test_set(monkeypatch):
    monkeypatch.setattr(runs.data, "describe", lambda name: _info(1000, name))
    note = runs.test_set_note({"a": paper_config("conv2"), "b": paper_config("conv4")})
    # sqrt(0.9 * 0.1 / 1000) = 0.95 points, sqrt(0.5 * 0.5 / 1000) = 1.58 points
    assert note.startswith("**Test set:** 1000 exact test images (the first 1000 of the "
                           "official 10000). Only these exact images")
    assert "has a standard error of 0.95 to 1.6 points." in note
    assert note.count("**Test set:**") == 1 and note.count("**Preprocessing:**") == 1
    assert note.endswith("**Preprocessing:** `cifar_raw`: "
                         + runs.data.PREPROCESSORS["cifar_raw"][1] + ".")


def test_test_set_note_of_a_full_test_set_has_no_error_sentence(monkeypatch):
    monkeypatch.setattr(runs.data, "describe", lambda name: _info(10000, name))
    note = runs.test_set_note({"a": paper_config("f1")})
    assert note.startswith("**Test set:** the full mnist test set (10000 images).")
    assert "standard error" not in note and "`scale01`" in note


# ---------------------------------------------------------------- committed runs


def _result(cfg, epochs_run, n_train):
    return {"config": cfg.to_dict(), "optimizer": cfg.optimizer, "name": cfg.name,
            "scale": {"label": "reduced", "is_reduced": True, "epochs_run": epochs_run,
                      "paper_epochs": cfg.paper_epochs, "train_fraction": 1.0,
                      "n_train": n_train}}


def test_unsynced_runs_are_the_laperm_runs_with_fewer_steps_than_k():
    cfg = paper_config("resnet50_p30")  # k = 800, batch 128 (1 epoch of 12800 images: 100 steps)
    stored = {"short": (None, _result(cfg, 1, cfg.batch_size * 100)),
              "long": (None, _result(cfg, 10, cfg.batch_size * 100)),
              "adam": (None, _result(cfg.adam_baseline(), 1, cfg.batch_size * 100))}
    assert records.unsynced_runs(stored) == {"short": f"short: 100 steps with k = {cfg.sync_period}"}
    assert runs.unsynced_note({}) == "Every stored LaPerm run synced at least once."
    assert runs.unsynced_note({"x": "x: 3 steps with k = 8"}).endswith(": x: 3 steps with k = 8.")


def test_three_evaluation_histories_keep_the_longest_run_of_each_experiment():
    def history(n, three=True):
        return pd.DataFrame({"epoch": range(1, n + 1), "test_accuracy": 0.5,
                             "test_accuracy_stale_bn": 0.4 if three else np.nan})
    cfg = paper_config("conv2")
    stored = {"a": (history(2), _result(cfg, 2, 1000)), "b": (history(5), _result(cfg, 5, 1000)),
              "c": (history(9, three=False), _result(cfg, 9, 1000)),
              "d": (history(7), _result(cfg.adam_baseline(), 7, 1000))}
    assert list(runs.three_evaluation_histories(stored)) == ["a: 2 epochs", "b: 5 epochs"]
    assert list(runs.three_evaluation_histories(stored, longest=True)) == ["b: 5 epochs"]


# ---------------------------------------------------------------- findings


def _table():
    return pd.DataFrame({
        "optimizer": ["LaPerm (inner Adam)", "LaPerm (inner Adam)", "Adam"],
        "k": [10, 250, np.nan], "scale": ["s", "s", "s"], "paper row": ["f2", "f2", "f2"],
        "seed": [0, 0, 0], "test acc at best val": [0.97, 0.95, 0.975], "paper": np.nan,
    }, index=["LaPerm k=10", "LaPerm k=250", "Adam"])


def test_page_findings_put_the_sentences_in_the_book_order(monkeypatch):
    monkeypatch.setattr(findings, "results_table", lambda stored: _table().iloc[[2]])
    lines = findings.page_findings(_table(), checks=["check."], stored={"x": None},
                                   committed={"speed": ["fast."], None: ["plain."]})
    assert lines[0] == "LaPerm k=10: **97.00%** test accuracy (s)."
    assert lines[3] == "LaPerm k=10 − Adam: -0.50 points at the same scale and seed."
    assert lines[5:] == ["check.", "Committed: Adam: **97.50%** test accuracy (s).",
                         "Committed, speed: fast.", "plain."]
    assert findings.page_findings() == []


def test_best_and_worst_name_the_extremes_of_the_sweep():
    assert findings.best_and_worst(_table(), "k") == [
        "Best k here: 10 (97.00%); worst: k = 250 (95.00%); Adam 97.50% (s)."]
    assert findings.best_and_worst(_table().iloc[[2]], "k") == []


def test_sentences_of_the_checks_and_the_convergence():
    checks = pd.DataFrame({"share of weights that moved": [0.25, 1.0]}, index=["LaPerm", "Adam"])
    configs = {"LaPerm": paper_config("conv7"), "Adam": paper_config("conv7").adam_baseline()}
    assert findings.permutation_findings(checks, configs) == [
        "LaPerm: every permuted variable is a permutation of θ0; 25.0% of the weights moved."]
    assert findings.shared_value_findings(configs)[0].endswith("(1 runs checked above).")
    speed = pd.DataFrame([{"experiment": "conv7", "device": "CPU", "epochs": 45, "seeds": 3,
                           "LaPerm 99%": 4.333, "Adam 99%": 2.0}])
    assert findings.convergence_findings(speed) == [
        "conv7 (CPU, 45 epochs, 3 seed(s)) reaches 99% of its final test accuracy at epoch 4.3 "
        "under LaPerm and 2.0 under Adam."]


def test_laperm_adam_sentences_give_the_standard_error_of_the_gap(monkeypatch):
    pairs = pd.DataFrame([{"experiment": "conv7", "device": "CPU", "scale": "paper scale",
                           "seeds": 3, "Adam seeds": 2, "LaPerm": 0.99, "Adam": 0.98,
                           "LaPerm − Adam (points)": 1.0, "model": "conv7"}])
    monkeypatch.setattr(comparisons, "laperm_adam_pairs", lambda records: pairs)
    recs = pd.DataFrame({"model": ["conv7"], "n_test": [10000]})
    # 100 * sqrt((0.99 * 0.01 + 0.98 * 0.02) / 10000) = 0.1718 points
    (line,) = comparisons.laperm_adam_sentences(recs, "conv7")
    assert line == ("conv7 (CPU, paper scale, 3 LaPerm seed(s), 2 Adam seed(s)): LaPerm 99.00%, "
                    "Adam 98.00%, LaPerm − Adam +1.00 points; standard error of the difference "
                    "on 10,000 test images about 0.17 points.")
    assert comparisons.laperm_adam_sentences(recs, "conv2") == []


def test_mask_control_findings_say_what_the_control_closes(monkeypatch, tmp_path):
    monkeypatch.setattr(findings, "results_dir", lambda: tmp_path)
    monkeypatch.setattr(findings, "gap_closed", lambda r, e, c: {
        "paper": 0.7814, "ours": 0.70, "control": 0.73, "gap": 8.14, "closed": 3.0, "seeds": 3})
    assert findings.mask_control_findings(pd.DataFrame()) == [
        "Committed paper-scale runs: the per-unit mask closes 3 of the 8 points between our F2 "
        "(70.0%, 3 seeds) and the paper (78.14%); the rest is not explained by the output "
        "layer's mask."]
    monkeypatch.setattr(findings, "gap_closed", lambda r, e, c: None)
    assert findings.mask_control_findings(pd.DataFrame()) == []


# ---------------------------------------------------------------- weights against θ0


def test_layer_tables_add_up_kernels_and_rewired_connections():
    layers = pd.DataFrame({
        "run": ["a", "a", "a"], "variable": ["1: k", "2: k", "3: b"], "kernel": [True, True, False],
        "size": [100, 300, 10], "zeros at θ0": [20, 100, 0], "zeros trained": [20, 100, 0],
        "moved weights": [0.2, 0.6, 0.9], "rewired connections": [0.25, 0.5, np.nan],
    })
    summary = weights.rewiring_summary(layers).loc["a"]  # the bias (not a kernel) is left out
    assert summary["kernel weights"] == 400 and summary["zeros (θ0 = trained)"] == 120
    assert summary["moved weights"] == pytest.approx((0.2 * 100 + 0.6 * 300) / 400)  # 0.5
    # weighted by the non-zeros at θ0: (0.25 * 80 + 0.5 * 200) / 280
    assert summary["rewired connections"] == pytest.approx(120 / 280)
    dense = weights.rewiring_summary(layers.assign(**{"zeros at θ0": 0})).loc["a"]
    assert np.isnan(dense["rewired connections"])
    per_kernel = weights.rewired_per_kernel(layers)
    assert list(per_kernel.index) == ["1: k", "2: k"] and per_kernel.loc["2: k", "a"] == 0.5
    assert weights.rewired_per_kernel(layers.assign(**{"zeros at θ0": 0})) is None


def test_pruning_tables_give_the_kept_share_per_kernel_and_overall():
    rows = [{"shape": [3, 3, 1, 32], "kept_fraction": 0.8, "nonzero": 230, "size": 288},
            {"shape": [3, 3, 32, 32], "kept_fraction": 0.3, "nonzero": 2765, "size": 9216}]
    found = {"p=70%": (None, {"init_tables": {"pruning": rows}}),
             "dense": (None, {"init_tables": {}})}
    pivot, overall = weights.pruning_tables(found)
    assert list(pivot.index) == ["1: (3, 3, 1, 32)", "2: (3, 3, 32, 32)"]
    assert list(pivot.columns) == ["p=70%"] and pivot.iloc[1, 0] == 0.3
    assert overall["p=70%"] == pytest.approx((230 + 2765) / (288 + 9216))
    assert weights.pruning_tables({"dense": (None, {"init_tables": {}})}) is None


def test_untrained_weights_are_a_permutation_of_theta0_with_two_values(tmp_path):
    cfg = paper_config("f1")
    theta0, _ = weights.experiment.build_model(cfg)
    theta0.save_weights(tmp_path / weights.BEST_WEIGHTS)  # "trained" = θ0
    check = weights.permutation_check(cfg, tmp_path)
    assert check == {"variables checked": 1, "all are permutations of θ0": True,
                     "share of weights that moved": 0.0}
    table, initial, trained = weights.kernel_values_table({"F1 LaPerm": cfg}, lambda c: tmp_path)
    row = table.loc[("F1 LaPerm", "layer 1: (784, 10)")]
    assert row["values"] == "0, 0.08" and row["distinct values trained"] == 2
    assert row["non-zeros at θ0"] == row["non-zeros trained"]
    assert weights.first_kernel(trained["F1 LaPerm"]).shape == (784, 10)


def test_per_unit_mask_gives_every_output_unit_the_same_connections():
    counts = weights.output_connection_counts([0], masks=("per_unit",))
    # F2's output layer: 64 inputs, keep 1/3: round(64 / 3) = 21 for each of the 10 digits
    assert list(counts["digit"]) == list(range(10))
    assert set(counts["connections"]) == {21}
    assert set(counts["source"]) == {"ours, seed 0, per_unit"}


# ---------------------------------------------------------------- the saw-tooth


def test_sync_jumps_compare_the_step_before_each_sync_with_the_synced_weights():
    inner, synced = "inner weights", "synchronised"
    steps = pd.DataFrame(
        [dict(step=s, accuracy=a, weights=inner) for s, a in [(1, .1), (2, .2), (3, .3), (4, .4)]]
        + [dict(step=s, accuracy=a, weights=synced) for s, a in [(1, .0), (2, .15), (3, .2), (4, .5)]])
    jumps = sawtooth.sync_jumps(steps, 2)
    assert list(jumps.index) == [2, 4]
    assert list(jumps[sawtooth.BEFORE]) == [0.1, 0.3] and list(jumps[sawtooth.AFTER]) == [.15, .5]
    assert jumps[sawtooth.CHANGE].to_numpy() == pytest.approx([0.05, 0.2])


def test_sync_probe_measures_both_weights_after_every_step():
    from laperm import LaPerm
    from laperm.method.callbacks import SyncProbe

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=LaPerm(keras.optimizers.Adam(1e-2), sync_period=2),
                  loss="sparse_categorical_crossentropy")
    probe = SyncProbe(x, y)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[probe], verbose=0)  # 4 steps
    rows = pd.DataFrame(probe.rows)
    assert list(rows["step"]) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert set(rows["weights"]) == {SyncProbe.INNER, SyncProbe.SYNCED}
    at_sync = rows[rows["step"] == 2]  # right after a sync both are the same network
    assert at_sync["accuracy"].nunique() == 1


# ---------------------------------------------------------------- figures


def test_sweep_figures_draw_the_laperm_runs_and_the_adam_line():
    table = _table().assign(**{"final test acc": [0.96, 0.94, 0.97], "syncs": [10, 1, np.nan],
                               "p": [0.0, 0.3, 0.0]})
    ax = viz.plot_sync_period_sweep(table, title="t")
    assert len(ax.lines) == 3 and [t.get_text() for t in ax.texts] == ["10 syncs", "1 syncs"]
    assert ax.get_xscale() == "log"
    fig = viz.plot_pruning_sweep(table)
    assert len(fig.axes[0].lines) == 3 and len(fig.axes[1].lines) == 1
    assert fig.axes[1].lines[0].get_ydata()[1] == pytest.approx(0.9232)  # the paper, p = 30 %
    counts = pd.DataFrame({"source": ["a"] * 10 + ["b"] * 10, "mask": ["bernoulli"] * 10 + ["per_unit"] * 10,
                           "digit": list(range(10)) * 2, "connections": range(20)})
    assert viz.plot_connection_counts(counts).get_xticks().tolist() == list(range(10))
    steps = pd.DataFrame({"step": [1, 2, 3, 4] * 2, "accuracy": 0.5,
                          "weights": ["inner"] * 4 + ["synced"] * 4})
    zoom = viz.plot_sawtooth_zoom(steps, 2)
    assert len(zoom.axes) == 2 and "k = 2" in zoom.axes[0].get_title()
    plt.close("all")
