"""The tables and sentences of page 4.1 (laperm.analysis.authors_code) and its figures."""

from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from laperm import viz  # noqa: E402
from laperm.analysis import authors_code as ac  # noqa: E402


def _training_table() -> pd.DataFrame:
    """What crosscheck.training_table gives for two F1 runs of one sync (k = 20)."""
    nan = float("nan")
    rows = []
    for loss, agree, diff in (("matching", 1.0, 0.0), ("Keras mean", 0.999, 1e-3)):
        for step, sync, fraction in ((1, nan, 1.0), (19, nan, agree), (20, 1.0, agree)):
            rows.append({"model": "f1", "k": 20, "loss": loss, "dropout": False,
                         "step": step, "sync": sync, "agree_fraction": fraction,
                         "chance_fraction": 0.52, "max_abs_diff": diff})
    return pd.DataFrame(rows)


def test_files_sentence_and_shims_table():
    text = ac.files_sentence({"tf_keras": "2.21.0",
                              "sha256": {"LaPerm.py": "0123456789abcdef", "w.py": "f" * 64}})
    assert text == ("The authors' files, loaded with tf-keras 2.21.0; sha256 of each file: "
                    "`LaPerm.py` `0123456789ab…`, `w.py` `ffffffffffff…`.")
    shims = [SimpleNamespace(name="numpy.cast", replacement="astype", reason="removed")]
    table = ac.shims_table(shims)
    assert list(table.columns) == ["their import", "what it gets", "why"]
    assert table.iloc[0].tolist() == ["numpy.cast", "astype", "removed"]


def test_sync_finding_counts_cases_and_positions():
    sync = pd.DataFrame({"identical": [True, False, True], "positions": [7840, 10, 2000]})
    assert ac.sync_finding(sync) == ("**Sync**: identical bits in 2 of 3 cases "
                                     "(9,850 positions).")


def test_training_runs_keeps_the_profile_models_and_sets_the_syncs():
    runs = (dict(model="f1", syncs=4, matching=False), dict(model="conv7", syncs=3),
            dict(model="f2", syncs=4))
    assert ac.training_runs(runs, ["f1", "f2"], 2) == [
        dict(model="f1", syncs=2, matching=False), dict(model="f2", syncs=2)]


def test_label_training_names_runs_and_moments():
    table = _training_table()
    conv = table.iloc[:1].assign(model="conv7", dropout=True)
    labelled = ac.label_training(pd.concat([table, conv], ignore_index=True))
    assert labelled["run"].tolist()[:3] == ["F1, k = 20, matching"] * 3
    assert labelled["run"].iloc[-1] == "Conv7, k = 20, matching, dropout"
    assert labelled["when"].tolist()[:3] == ["after step 1", "just before sync 1",
                                             "after sync 1"]
    assert "run" not in table  # the input is left alone


def test_agreement_table_and_last_sync():
    labelled = ac.label_training(_training_table())
    table = ac.agreement_table(labelled)
    assert table.index.tolist() == ["F1, k = 20, matching", "F1, k = 20, Keras mean"]
    assert table.loc["F1, k = 20, Keras mean", "just before sync 1"] == pytest.approx(0.999)
    assert table.loc["F1, k = 20, matching", "after step 1"] == 1.0
    last = ac.last_sync_agreement(labelled)
    assert last["step"].tolist() == [20, 20]


def test_training_finding_from_hand_made_comparisons():
    labelled = ac.label_training(_training_table())
    assert ac.training_finding(labelled) == (
        "**Training**: with the matching loss (no dropout), all positions agree after every "
        "compared sync in 1 of 1 runs (and between syncs too); with Keras's mean loss, "
        "F1 99.90% (chance 52%) of the positions agree after sync 1.")
    # a difference between syncs in a matching run is reported
    moved = _training_table()
    moved.loc[(moved["loss"] == "matching") & (moved["step"] == 19), "max_abs_diff"] = 3e-8
    assert "differ by at most 3e-08" in ac.training_finding(ac.label_training(moved))


def _record() -> dict:
    seeds_a = {"0": 0.80, "1": 0.80, "2": 0.80}
    seeds_o = {"0": 0.84, "1": 0.86, "2": 0.85}
    summary = [
        {"model": "f1", "side": "authors", "metric": "best_test_accuracy", "n": 3,
         "mean": 0.80, "sd": 0.0, "seeds": seeds_a},
        {"model": "f1", "side": "ours", "metric": "best_test_accuracy", "n": 3,
         "mean": 0.85, "sd": 0.01, "seeds": seeds_o},
        {"model": "f1", "side": "ours", "metric": "last_test_accuracy", "n": 3,
         "mean": 0.5, "sd": 0.0, "seeds": seeds_o},
    ]
    runs = [{"model": "f1", "side": side, "seed": int(s), "best_test_accuracy": v}
            for side, seeds in (("authors", seeds_a), ("ours", seeds_o)) for s, v in seeds.items()]
    return {"scale": "notebook scale", "date": "2026-12-01T10:00:00+00:00",
            "commit": "3c96a2ef3b0123", "sides": {"authors": "their loop", "ours_keep": "4/7"},
            "hardware": {"cpu_count": 2, "accelerator": "none (CPU only)"},
            "summary": summary, "runs": runs}


def test_record_origin_and_read_record(tmp_path):
    record = _record()
    assert ac.record_origin(record) == (
        "a committed record (notebook scale), made by `python -m laperm.crosscheck "
        "distribution` on 2026-12-01 on a 2-core CPU, no GPU, commit 3c96a2ef3b")
    assert ac.record_origin(dict(record, hardware={"cpu_count": 16, "accelerator": "H100"})
                            ).endswith("on H100, commit 3c96a2ef3b")
    assert ac.record_origin(record, trained_here=True) == "trained in this build (notebook scale)"
    assert ac.read_record(tmp_path / "missing.json") is None
    (tmp_path / "d.json").write_text(json.dumps(record))
    assert ac.read_record(tmp_path / "d.json") == record


def test_settings_seeds_and_runs_tables():
    record = _record()
    assert ac.settings_table(record).to_dict("records") == [
        {"side": "authors' code", "setting": "their loop"},
        {"side": "ours, keeping 4/7", "setting": "4/7"}]
    table = pd.DataFrame([{"model": "F1", "side": "ours", "mean": 0.85, "sd": 0.01,
                           "seed 0": 0.84}])
    seeds = ac.seeds_table(table)
    assert list(seeds.columns) == ["model", "side", "paper", "mean", "sd", "seed 0"]
    assert seeds["paper"].iloc[0] == 0.8546
    runs = ac.seed_runs(record)
    assert set(runs["model"]) == {"F1"} and set(runs["side"]) == {"authors' code", "ours"}


def test_distribution_findings_place_the_paper_above_the_interval():
    # three identical seeds at 80%: the interval is 80% ± 1.96 · sqrt(.8 · .2 / 10000),
    # about ±0.8 points, far below the paper's 85.46%
    (line,) = ac.distribution_findings(_record())
    assert line.startswith("**F1** (paper 85.46%): the authors' code 80.0% ± 0.0%, ours "
                           "85.0% ± 1.0% (3 seeds each); the authors' own code is 5.5 points "
                           "below the paper's number, with 3 of its 3 seeds below it (best "
                           "80.00%). The paper's number is above the 95% interval [79.2%, 80.8%]")
    assert line.endswith(": their code misses it.")
    record = _record()
    record["summary"] = record["summary"][1:]  # no authors' side: no sentence
    assert ac.distribution_findings(record) == []


def test_plot_position_agreement_draws_one_bar_per_run():
    ax = viz.plot_position_agreement(ac.label_training(_training_table()))
    assert len(ax.patches) == 2
    assert [p.get_width() for p in ax.patches] == pytest.approx([1.0, 0.999])
    assert ax.get_xlabel() == "positions that agree after sync 1"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["F1, k = 20, matching",
                                                           "F1, k = 20, Keras mean"]
    plt.close("all")


def test_plot_seed_accuracies_marks_the_paper():
    record = _record()
    record["runs"] += [dict(r, model="f2") for r in record["runs"]]
    fig = viz.plot_seed_accuracies(ac.seed_runs(record))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["F1", "F2"]
    assert axes[0].lines[0].get_ydata()[0] == pytest.approx(0.8546)
    assert np.isclose(axes[1].lines[0].get_ydata()[0], 0.7814)
    plt.close("all")


def test_load_or_explain_without_the_authors_code(monkeypatch, tmp_path):
    from laperm import crosscheck

    monkeypatch.setenv(crosscheck.ENV_VAR, str(tmp_path / "no-clone-here"))
    code, note = crosscheck.load_or_explain()
    assert code is None
    assert note.startswith("**Not executed in this build:** ")
    assert note.endswith(f"; {crosscheck.SETUP_HINT}.")
