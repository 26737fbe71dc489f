"""The experiment runner: configs, honest evaluation, resuming (SPEC 5, 6)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

from laperm import experiment
from laperm.experiment import ExperimentConfig, paper_config, run


def tiny(name="f1", **changes):
    base = dict(epochs=2, train_fraction=0.02, validation_size=500, sync_period=5)
    base.update(changes)
    return paper_config(name, **base)


def test_paper_configs_hold_the_papers_settings():
    c7 = paper_config("conv7")
    assert (c7.batch_size, c7.epochs, c7.sync_period, c7.skip_bias) == (50, 45, 1200, False)
    assert paper_config("conv7_k20").sync_period == 20
    assert paper_config("conv13").preprocessing == "cifar_raw"  # the authors' as-run input
    assert paper_config("resnet50").sync_period == 400
    assert paper_config("resnet50_p70").prune_keep == pytest.approx(0.3)
    f2 = paper_config("f2")
    assert (f2.batch_size, f2.epochs, f2.sync_period, f2.shared_value) == (128, 25, 250, 0.03)
    assert not c7.is_reduced and c7.scale_label == "paper scale"
    small = c7.replace(epochs=3, train_fraction=0.1)
    assert small.scale_label == "reduced: 3 of 45 epochs, 10% of the training set"
    assert small.hash != c7.hash and len(c7.hash) == 12
    assert paper_config("f2_per_unit").hash != f2.hash
    with pytest.raises(ValueError, match="shared_mask"):
        f2.replace(shared_mask="balanced")
    assert c7.adam_baseline().optimizer == "adam"
    assert ExperimentConfig.from_dict(json.loads(json.dumps(f2.to_dict()))) == f2


def test_committed_records_keep_their_config_hash():
    """Adding a config field (at its default) must not change older records' hashes."""
    import json
    from pathlib import Path

    from laperm.experiment import ExperimentConfig

    records = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/result.json"))
    assert records
    for path in records:
        result = json.loads(path.read_text())
        assert ExperimentConfig.from_dict(result["config"]).hash == result["config_hash"], path


def test_bad_names_and_values_list_the_valid_ones():
    with pytest.raises(ValueError, match="conv7"):
        paper_config("conv99")
    with pytest.raises(ValueError, match="valid"):
        paper_config("conv7").replace(epoch=3)
    with pytest.raises(ValueError, match="sync_period"):
        paper_config("conv7", sync_period=0)
    with pytest.raises(ValueError, match="optimizer"):
        paper_config("conv7", optimizer="sgd")
    with pytest.raises(ValueError, match="lr_schedule"):
        paper_config("conv7", lr_schedule="cosine")


def test_learning_rate_schedules():
    assert experiment.learning_rate_at("exp95", 1e-3, 2) == pytest.approx(1e-3 * 0.95**2)
    assert experiment.learning_rate_at("step06", 1e-3, 25) == pytest.approx(1e-3 * 0.36)
    assert experiment.learning_rate_at("resnet", 1e-3, 80) == pytest.approx(1e-3)
    assert experiment.learning_rate_at("resnet", 1e-3, 81) == pytest.approx(1e-4)
    assert experiment.learning_rate_at("resnet", 1e-3, 190) == pytest.approx(5e-7)


def test_run_records_an_honest_result(tmp_path, data_dir):
    cfg = tiny()
    history, result = run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    assert list(history["epoch"]) == [1, 2]
    assert {"val_accuracy", "test_accuracy", "sync_count", "learning_rate"} <= set(history)
    assert result["config_hash"] == cfg.hash
    assert result["evaluated_on_synchronised_weights"] is True
    best = history.loc[history["val_accuracy"].idxmax()]
    assert result["best_epoch"] == int(best["epoch"])  # chosen on validation, not test
    assert result["test_accuracy_at_best_val"] == pytest.approx(best["test_accuracy"])
    assert result["scale"]["is_reduced"] and result["scale"]["n_val"] == 500
    assert 0.1 < result["final_test_accuracy"] <= 1
    assert result["versions"]["keras"] == keras.__version__
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert stored["final_test_accuracy"] == result["final_test_accuracy"]
    # F1 keeps exactly two values {0, v} in its kernel after training.
    model = experiment.build_model(cfg)[0]
    model.load_weights(tmp_path / "run" / "best.weights.h5")
    kernel = ops.convert_to_numpy(model.trainable_variables[0].value)
    assert set(np.unique(kernel)) <= {0.0, np.float32(0.08)}
    # A finished run is returned from disk.
    again, result2 = run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    assert result2 == stored and len(again) == 2


def test_adam_baseline_runs(tmp_path, data_dir):
    history, result = run(tiny().adam_baseline(), tmp_path / "adam", data_dir=data_dir, progress=False)
    assert result["optimizer"] == "adam" and not result["evaluated_on_synchronised_weights"]
    assert (history["sync_count"] == 0).all()


def test_an_interrupted_run_resumes_and_loses_nothing(tmp_path, data_dir, interrupt_run):
    cfg = tiny(epochs=3)
    interrupt_run(cfg, tmp_path / "run", 1, data_dir=data_dir, progress=False)
    assert not (tmp_path / "run" / "result.json").exists()
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    steps_two_epochs = int(ops.convert_to_numpy(checkpoint.optimizer.iterations))
    history, result = run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    assert list(history["epoch"]) == [1, 2, 3]
    assert result["scale"]["epochs_run"] == 3
    final = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert int(ops.convert_to_numpy(final.optimizer.iterations)) == steps_two_epochs * 3 // 2


def test_out_dir_of_another_config_is_refused(tmp_path, data_dir):
    run(tiny(epochs=1), tmp_path / "run", data_dir=data_dir, progress=False)
    with pytest.raises(ValueError, match="different config"):
        run(tiny(epochs=1, seed=1), tmp_path / "run", data_dir=data_dir, progress=False)
