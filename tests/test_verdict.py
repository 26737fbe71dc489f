"""The verdict: which rows of the paper's table hold, from the records."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from laperm.analysis import comparisons, records, verdict
from laperm.book import findings
from laperm.experiment import PAPER_ACCURACY, paper_config
from test_records import write_run
from laperm import models, viz


def _records(tmp_path, runs):
    for name, cfg, accs, *extra in runs:
        write_run(tmp_path / name, cfg, accs, **(extra[0] if extra else {}))
    return records.load_records(tmp_path)


def test_the_statistics_match_hand_computed_values():
    # 78% on 1,000 images: sqrt(.78 * .22 / 1000) = 0.013100 -> 1.96 x = 2.57 points
    assert verdict.binomial_se(0.78, 1000) == pytest.approx(0.0130996, abs=1e-6)
    assert verdict.half_width(0.0, 1, 0.78, 1000) == pytest.approx(0.025675, abs=1e-5)
    assert verdict.seed_sd([0.5]) == 0.0
    assert verdict.seed_sd([0.80, 0.82, 0.84]) == pytest.approx(np.std([0.80, 0.82, 0.84], ddof=1))
    # three seeds on 10,000 images: mean .82, sd .02; 1.96 sqrt(.02² 4/3 + .82 .18 / 1e4)
    mean, low, high = verdict.interval([0.80, 0.82, 0.84], 10_000)
    h = 1.96 * math.sqrt(0.02 ** 2 * 4 / 3 + 0.82 * 0.18 / 10_000)
    assert (mean, low, high) == pytest.approx((0.82, 0.82 - h, 0.82 + h))


def test_status_rules():
    s = verdict.status
    assert s(0.80, 0.79, 0.81, 3, True, True) == verdict.REPRODUCED
    assert s(0.80, 0.79, 0.81, 2, True, True) == "consistent (2 seeds)"
    assert s(0.80, 0.79, 0.81, 1, True, True) == "consistent (1 seed)"
    assert s(0.80, 0.79, 0.81, 5, True, False) == "consistent (5 seeds)"  # another precision
    assert s(0.85, 0.79, 0.81, 3, True, True) == verdict.NOT_REPRODUCED
    assert s(0.85, 0.79, 0.81, 1, True, True) == "below the paper (1 seed)"
    assert s(0.70, 0.79, 0.81, 3, True, True) == "above the paper (3 seeds)"
    assert s(0.80, 0.79, 0.81, 3, False, False) == verdict.NOT_TESTED
    assert s(0.80, float("nan"), float("nan"), 0, True, True) == verdict.NOT_TESTED


def test_a_row_with_fewer_than_three_seeds_is_never_called_reproduced(tmp_path):
    """Two seeds exactly on the paper's number: consistent, not reproduced; a third makes it."""
    f1 = paper_config("f1")
    paper = PAPER_ACCURACY["f1"]
    runs = [(f"f1_laperm_s{s}", f1.replace(seed=s), [(paper, paper)]) for s in range(3)]
    two = verdict.verdict_table(_records(tmp_path / "two", runs[:2])).set_index("experiment")
    assert two.loc["f1", "n"] == 2 and two.loc["f1", "status"] == "consistent (2 seeds)"
    assert (two["status"] == verdict.REPRODUCED).sum() == 0
    three = verdict.verdict_table(_records(tmp_path / "three", runs)).set_index("experiment")
    assert three.loc["f1", "status"] == verdict.REPRODUCED


def test_three_gpu_seeds_at_the_paper_scale_reproduce_a_row_beside_a_cpu_seed(tmp_path):
    """Future device-engine records (engine named in the record) enter with no code change,
    and GPU seeds are never averaged with a CPU seed."""
    conv7 = paper_config("conv7")
    paper = PAPER_ACCURACY["conv7"]
    runs = [(f"conv7_laperm_s{s}_h200", conv7.replace(seed=s),
             [(0.99, 0.99), (paper + 0.0005 * (s - 1), paper + 0.0005 * (s - 1))],
             {"accelerator": "NVIDIA H200"}) for s in range(3)]
    runs.append(("conv7_laperm_s0", conv7, [(0.99, 0.98)] * 2))  # CPU, far below
    runs.append(("conv7_adam_s0_h200", conv7.adam_baseline(), [(0.99, 0.995)] * 2,
                 {"accelerator": "NVIDIA H200"}))
    df = _records(tmp_path, runs)
    for s in range(3):  # the device engine names itself in the record
        path = tmp_path / f"conv7_laperm_s{s}_h200" / "result.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "engine": "device"}))
    df = records.load_records(tmp_path)
    groups = verdict.verdict_groups(df)
    assert sorted(groups["device"]) == ["CPU", "NVIDIA H200"]
    t = verdict.verdict_table(df).set_index("experiment")
    row = t.loc["conv7"]
    assert row["status"] == verdict.REPRODUCED and row["n"] == 3
    assert row["device"] == "NVIDIA H200" and row["ours"] == pytest.approx(paper)
    assert "device engine" in row["differs"] and "NVIDIA H200" in row["differs"]
    # Adam on the H200 is a fit-path run, not the device engine: not the same group
    assert row["adam_n"] == 0
    cpu = groups[groups["device"] == "CPU"].iloc[0]
    assert cpu["status"] == "below the paper (1 seed)" and cpu["mean"] == pytest.approx(0.98)


def test_a_run_that_never_synced_is_not_laperm(tmp_path):
    """A LaPerm run shorter than its sync period enters no LaPerm table."""
    conv2 = paper_config("conv2", epochs=1, train_fraction=0.02)  # 22 steps < k = 1000
    df = _records(tmp_path, [("conv2_laperm_s0", conv2, [(0.3, 0.3)]),
                             ("conv2_adam_s0", conv2.adam_baseline(), [(0.35, 0.35)])])
    lap = df[df["optimizer"] == "laperm"].iloc[0]
    assert lap["steps"] == 22 and not lap["synced"]
    assert comparisons.laperm_adam_pairs(df).empty
    assert comparisons.headline_pairs(df).empty
    assert verdict.verdict_groups(df).empty
    assert verdict.verdict_table(df).set_index("experiment").loc["conv2", "n"] == 0
    assert comparisons.paper_coverage(df).set_index("experiment").loc["conv2", "seeds"] == 0
    synced = conv2.replace(sync_period=20)  # 22 steps >= k = 20: one sync
    df = _records(tmp_path / "synced", [("conv2_laperm_s0", synced, [(0.3, 0.3)]),
                                        ("conv2_adam_s0", synced.adam_baseline(), [(0.35, 0.35)])])
    assert len(comparisons.laperm_adam_pairs(df)) == 1


def test_verdict_table_from_records(tmp_path):
    f1 = paper_config("f1")
    conv7 = paper_config("conv7")
    df = _records(tmp_path, [
        ("f1_laperm_s0", f1, [(0.80, 0.80), (0.83, 0.82)]),
        ("f1_laperm_s1", f1.replace(seed=1), [(0.80, 0.80), (0.84, 0.83)]),
        ("f1_laperm_s2", f1.replace(seed=2), [(0.80, 0.80), (0.84, 0.825)]),
        ("f1_adam_s0", f1.adam_baseline(), [(0.92, 0.92)]),
        ("conv7_laperm_s0_e2", conv7.replace(epochs=2), [(0.98, 0.98), (0.99, 0.99)]),
    ])
    crosscheck = {"summary": [{"model": "f1", "side": "authors", "metric": "best_test_accuracy",
                               "mean": 0.823, "sd": 0.023, "seeds": {"0": 0.8, "1": 0.82}}]}
    t = verdict.verdict_table(df, crosscheck).set_index("experiment")
    assert list(t.index) == list(PAPER_ACCURACY)  # one row per line of the paper's table
    f1_row = t.loc["f1"]
    assert f1_row["status"] == verdict.NOT_REPRODUCED and f1_row["n"] == 3
    assert f1_row["ours"] == pytest.approx(0.825) and f1_row["high"] < PAPER_ACCURACY["f1"]
    assert f1_row["adam"] == pytest.approx(0.92) and f1_row["adam_n"] == 1
    assert f1_row["n_test"] == 10_000 and "55,000 of 60,000 training images" in f1_row["differs"]
    assert "authors' own code: 82.3%" in f1_row["why"]
    assert t.loc["conv7", "status"] == verdict.NOT_TESTED  # 2 of 45 epochs is reduced
    assert "largest run: 2 of 45 epochs" in t.loc["conv7", "why"]
    assert t.loc["conv2", "why"].startswith("no run yet")
    assert t.loc["f1", "page"] == "05_5_weight_agnostic" and t.loc["conv7", "page"] == "05_1_conv7_mnist"
    assert verdict.counts(t) == {"reproduced": 0, "consistent": 0, "above the paper": 0,
                                 "below the paper": 0, "not reproduced": 1, "not tested": 9}


def test_verdict_html_links_every_row_to_its_page(tmp_path):
    t = verdict.verdict_table(pd.DataFrame())
    html = findings.verdict_html(t)
    assert html.count("<tr>") == len(PAPER_ACCURACY) + 1
    assert 'href="05_4_sparse.html">ResNet50 (p = 30%)</a>' in html
    assert findings.verdict_summary(t) == (
        "Of the paper's 10 rows: **10 not tested at the paper's scale** (Conv7, Conv2, Conv4, "
        "Conv13, ResNet50, ResNet50 (p = 30%), ResNet50 (p = 50%), ResNet50 (p = 70%), F1, F2).")


def test_latest_snapshots_keeps_one_record_per_run_in_progress(tmp_path):
    conv2 = paper_config("conv2")
    df = _records(tmp_path, [("conv2_laperm_s0_e3", conv2.replace(epochs=3), [(0.3, 0.3)] * 3),
                             ("conv2_laperm_s0_e5", conv2.replace(epochs=5), [(0.4, 0.4)] * 5)])
    df["snapshot_of"] = ["conv2_laperm_s0 (in progress, 3 of 125 epochs)",
                         "conv2_laperm_s0 (in progress, 5 of 125 epochs)"]
    kept = records.latest_snapshots(df)
    assert list(kept["run"]) == ["conv2_laperm_s0_e5"]
    df["device"] = ["CPU", "NVIDIA H200"]  # a record of another device replaces nothing
    assert len(records.latest_snapshots(df)) == 2
    df["snapshot_of"] = None  # separate reduced runs are all kept
    assert len(records.latest_snapshots(df)) == 2


def test_epochs_to_reach_a_share_of_the_final_accuracy():
    assert comparisons.epochs_to_reach([0.5, 0.8, 0.9, 1.0]) == [3.0, 4.0, 4.0]
    assert comparisons.epochs_to_reach([0.95, 0.5, 0.99, 1.0]) == [1.0, 1.0, 3.0]
    assert all(v != v for v in comparisons.epochs_to_reach([]))


def test_convergence_table_pairs_laperm_and_adam_on_common_epochs(tmp_path):
    f1 = paper_config("f1", epochs=4)
    lap = [(0.1, a) for a in (0.5, 0.7, 0.8, 0.8)]
    adam = [(0.1, a) for a in (0.9, 0.95, 1.0)]  # 3 epochs: both are cut to 3
    no_sync = paper_config("conv2", epochs=1, train_fraction=0.02)
    df = _records(tmp_path, [("f1_laperm_s0", f1, lap),
                             ("f1_adam_s0", f1.replace(epochs=3).adam_baseline(), adam),
                             ("conv2_laperm_s0", no_sync, [(0.3, 0.3)]),
                             ("conv2_adam_s0", no_sync.adam_baseline(), [(0.3, 0.3)])])
    t = comparisons.convergence_table(df, records.load_histories(tmp_path))
    assert list(t["experiment"]) == ["f1"]  # the conv2 LaPerm run never synced
    row = t.iloc[0]
    assert row["epochs"] == 3 and row["LaPerm final"] == pytest.approx(0.8)
    # LaPerm: 90% of 0.8 = 0.72 -> epoch 3; Adam: 90% of 1.0 -> epoch 1, 99% -> epoch 3
    assert (row["LaPerm 90%"], row["LaPerm 99%"]) == (3.0, 3.0)
    assert (row["Adam 90%"], row["Adam 95%"], row["Adam 99%"]) == (1.0, 2.0, 3.0)
    fig = viz.plot_convergence(t)
    assert len(fig.axes) == 3
    assert viz.plot_convergence(pd.DataFrame()) is None


def test_the_readme_first_line_says_what_holds():
    """The README's title is the verdict of the committed records (update it when they change)."""
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert readme.read_text().splitlines()[0] == findings.readme_title(
        findings.committed_verdict())


@pytest.mark.parametrize("name", ["conv2", "conv7", "f2"])
def test_has_batchnorm_matches_the_built_model(name):
    import keras

    built = models.get(name)
    has = any(isinstance(layer, keras.layers.BatchNormalization) for layer in built.layers)
    assert models.has_batchnorm(name) == has


def test_authors_code_sentences_judge_the_paper_number_by_the_same_interval():
    def record(model, mean, sd):
        return {"summary": [{"model": model, "side": "authors", "metric": "best_test_accuracy",
                             "mean": mean, "sd": sd, "seeds": {"0": 0, "1": 0, "2": 0}}]}

    # F1 (paper 85.46%): 82.3% ± 2.3 over 3 seeds on 10,000 images -> [77.0%, 87.6%]
    (inside,) = verdict.authors_code_sentences(record("f1", 0.823, 0.023))
    assert "lies inside its interval [77.0%, 87.6%]" in inside
    assert "consistent with the published number on 3 seeds" in inside
    assert "below the published" not in inside and "-3.2 points from the paper" in inside
    # F2 (paper 78.14%): 48.2% ± 4.5 -> [38.0%, 58.4%], the paper's number above it
    (below,) = verdict.authors_code_sentences(record("f2", 0.482, 0.045))
    assert "lies outside its interval [38.0%, 58.4%]" in below
    assert "their code lands below the published number too" in below
    assert verdict.authors_code_sentences(None) == []
