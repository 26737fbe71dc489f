"""Reading the CIFAR-10 training-throughput record for the book."""

from __future__ import annotations

import json

import pytest

import matplotlib

matplotlib.use("Agg")

from laperm import viz
from laperm.analysis import speed  # noqa: E402


def _payload():
    rows = []
    for model, rates in {"conv2": (400, 420, 500, 600, 820), "conv13": (30, 30, 75, 33, 90)}.items():
        for way, rate in zip(speed.WAY_NAMES, rates):
            rows.append({"model": model, "way": way, "images_per_s": rate,
                         "ratio_to_before": rate / rates[0], "ratio_to_default": rate / rates[1],
                         "gflop_per_s": rate * 0.3, "share_of_matmul_peak": 0.1})
    env = {"date": "2026-12-01T17:00:00+00:00", "commit": "0123456789abcdef",
           "hardware": {"accelerator": "none (CPU)", "cpu_count": 2},
           "versions": {"backend": "tensorflow", "tensorflow": "2.21.0"}}
    return {"rows": rows, "environment": env}


def test_summary_names_the_fastest_way_and_the_target(tmp_path):
    summary = speed.speedup_summary(_payload())
    assert list(summary["model"]) == ["conv2", "conv13"]
    assert list(summary["fastest way"]) == [speed.WAY_NAMES["fused_bfloat16"]] * 2
    assert list(summary["x previous release"]) == [820 / 400, 3.0]
    assert list(summary["x default"]) == [820 / 420, 3.0]
    # judged on the smaller speed-up: 1.95x over the default path misses 2x
    assert list(summary["meets 2x"]) == [False, True]
    table = speed.speed_table(_payload())
    assert len(table) == 10 and set(table["way"]) == set(speed.WAY_NAMES.values())
    assert viz.plot_speedups(table, target=speed.SPEEDUP_TARGET) is not None
    assert speed.speed_label(_payload()) == (
        "benchmarks/bench_cifar.py, 2026-12-01, CPU, 2 cores, tensorflow 2.21.0, commit 0123456")


def test_missing_or_older_records_read_as_none(tmp_path):
    assert speed.load_cifar_benchmark(tmp_path) is None
    folder = tmp_path / "benchmarks" / "results"
    folder.mkdir(parents=True)
    older = _payload()
    for row in older["rows"]:
        del row["ratio_to_default"]  # the record format before the five ways
    (folder / "cifar_tensorflow.json").write_text(json.dumps(older))
    assert speed.load_cifar_benchmark(tmp_path) is None
    (folder / "cifar_tensorflow.json").write_text(json.dumps(_payload()))
    assert speed.load_cifar_benchmark(tmp_path)["rows"][0]["model"] == "conv2"


def test_precision_check_compares_the_two_precisions_over_seeds():
    import pandas as pd

    def row(precision, seed, accuracy, **changes):
        return {"experiment": "conv2", "optimizer": "laperm", "epochs_run": 10,
                "kernels": "fused", "train_fraction": 1.0, "precision": precision, "seed": seed,
                "test_accuracy_at_best_val": accuracy, **changes}

    rows = [row("float32", 0, 0.60), row("float32", 1, 0.62), row("mixed_bfloat16", 0, 0.61),
            row("mixed_bfloat16", 1, 0.64),
            row("mixed_bfloat16", 2, 0.10, kernels="keras"),  # not part of the pair
            row("float32", 2, 0.10, epochs_run=8)]
    table = speed.precision_check(pd.DataFrame(rows))
    assert list(table["seeds"]) == ["0, 1", "0, 1"]
    assert table["bfloat16 - float32 (points)"].iloc[1] == pytest.approx(1.5)
    assert table["seed spread (points)"].tolist() == pytest.approx([2.0, 3.0])
    assert bool(table["within seed spread"].iloc[1])
    far = pd.DataFrame(rows[:2] + [row("mixed_bfloat16", 0, 0.70), row("mixed_bfloat16", 1, 0.71)])
    assert not bool(speed.precision_check(far)["within seed spread"].iloc[1])
    assert speed.precision_check(pd.DataFrame(rows[:3])) is None  # one bfloat16 seed only
