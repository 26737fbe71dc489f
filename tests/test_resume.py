"""Runs that survive: kills, resumes in new processes, and no silent data loss.

Every test here trains a real (tiny) run of :func:`laperm.experiment.run`.
The kill test runs ``run`` in subprocesses and kills them with SIGKILL at
random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laperm.run import files as runfiles
from laperm.experiment import RunDirError, paper_config, run

#: History columns that must be equal between an interrupted and an
#: uninterrupted run (everything but the times).
MEASURED = ["epoch", "loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
            "test_accuracy", "test_accuracy_unsynced", "learning_rate", "sync_count"]

F1_SMALL = dict(epochs=4, train_fraction=0.1)


def f1_small(**changes):
    return paper_config("f1", **{**F1_SMALL, **changes})


#: F1 on ``small_data_dir``: 800 training images (7 steps of 128 an epoch), a sync every
#: 5 steps, 200 validation and 500 test images.
F1_TINY = dict(epochs=4, validation_size=200, sync_period=5)


def f1_tiny(**changes):
    return paper_config("f1", **{**F1_TINY, **changes})


def measured(history: pd.DataFrame) -> pd.DataFrame:
    return history[MEASURED].reset_index(drop=True)


class Interrupt(BaseException):
    """Stands for a kill inside the process (not caught by ``except Exception``)."""


@pytest.fixture
def interrupt_after(monkeypatch):
    """Make the run stop right after the checkpoint (or another file) of an epoch."""

    def arm(epoch: int, after: str = "checkpoint.keras"):
        real = runfiles.atomic_write

        def atomic(path, write):
            real(path, write)
            if path.name == after and _epochs_in(path) == epoch:
                raise Interrupt(f"stopped after {after} of epoch {epoch}")

        monkeypatch.setattr(runfiles, "atomic_write", atomic)

    return arm


def _epochs_in(path: Path) -> int:
    history = path.parent / "history.csv"
    return len(pd.read_csv(history)) if history.exists() else 0


def _rows(folder: Path) -> int:
    """Epochs recorded in a run folder's history (written atomically: whole or absent)."""
    path = folder / "history.csv"
    return len(pd.read_csv(path)) if path.exists() else 0


@pytest.mark.slow
def test_kill_at_random_moments_and_resume_gives_the_uninterrupted_history(
        tmp_path, small_data_dir):
    """SIGKILL a real subprocess 3 times, each at a random moment after it trained two
    epochs of its own (so around a later checkpoint too); the same command resumes it.
    F1 on 800 training images (7 steps an epoch, a sync every 20: four syncs, some in
    resumed processes), 200 validation and 500 test images."""
    epochs, kills_wanted = 12, 3  # each kill costs at most 3.5 epochs: the run outlives them
    cfg = paper_config("f1", epochs=epochs, validation_size=200, sync_period=20)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from laperm.experiment import paper_config, run
        cfg = paper_config("f1", epochs={epochs}, validation_size=200, sync_period=20)
        run(cfg, sys.argv[1], data_dir={str(small_data_dir)!r}, progress=False)
    """))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    reference = tmp_path / "uninterrupted"  # in this process: one start of TensorFlow fewer
    run(cfg, reference, data_dir=small_data_dir, progress=False)
    expected = pd.read_csv(reference / "history.csv")
    assert expected["sync_count"].iloc[-1] == 4
    epoch_s = float(expected["epoch_time_s"].median())
    killed_dir = tmp_path / "killed"
    rng = random.Random(20261201)
    kills = 0
    t_start = time.monotonic()
    while True:
        before = _rows(killed_dir)
        proc = subprocess.Popen([sys.executable, str(script), str(killed_dir)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < kills_wanted:
            # two new epochs recorded: the resume point has moved past the last one
            while proc.poll() is None and _rows(killed_dir) < before + 2:
                assert time.monotonic() - t_start < 900, "the killed run made no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 1.5 * epoch_s))  # anywhere in the next epoch or so
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        break
    assert kills == kills_wanted, f"the run finished after {kills} kills"
    got = pd.read_csv(killed_dir / "history.csv")
    pd.testing.assert_frame_equal(measured(got), measured(expected))
    result = json.loads((killed_dir / "result.json").read_text())
    reference_result = json.loads((reference / "result.json").read_text())
    for key in ("best_epoch", "test_accuracy_at_best_val", "final_test_accuracy"):
        assert result[key] == reference_result[key], key
    # the tables of the first process, kept through the kills (layer names aside: they
    # count the models this process made before)
    assert _table_values(result["init_tables"]) == _table_values(reference_result["init_tables"])
    resumed = result["resumed_at_epochs"]
    assert len(resumed) == kills and resumed == sorted(set(resumed)), resumed  # each kill
    assert all(1 <= e < epochs for e in resumed), resumed
    assert not list(killed_dir.glob("*.tmp*")), "temporary files left behind"


@pytest.mark.slow
def test_resumed_augmented_run_with_dropout_is_reproducible(tmp_path, data_dir,
                                                             interrupt_after):
    """Conv7: augmentation and dropout of epoch e depend on (seed, e) only (150 training
    images: 3 steps of 50 an epoch; 100 validation and 100 test images)."""
    data_dir = _small_mnist(tmp_path / "tiny", data_dir, n=250, n_test=100)
    cfg = paper_config("conv7_k20", epochs=2, validation_size=100)
    expected, _ = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    interrupt_after(1)
    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    history, result = _resume(cfg, tmp_path / "b", data_dir)
    pd.testing.assert_frame_equal(measured(history), measured(expected))
    assert result["resumed_at_epochs"] == [1]


_REAL_ATOMIC = runfiles.atomic_write


def _resume(cfg, out, data_dir):
    """Disarm the interruption, then run the same config again."""
    runfiles.atomic_write = _REAL_ATOMIC  # (monkeypatch restores the same at teardown)
    return run(cfg, out, data_dir=data_dir, progress=False)


@pytest.mark.parametrize("after", ["history.csv", "checkpoint.keras"])
def test_crash_around_the_checkpoint_trains_each_epoch_once(tmp_path, small_data_dir,
                                                              interrupt_after, after):
    """The checkpoint is the one resume point: a crash just before or just
    after it never trains an epoch twice or records one twice."""
    data_dir = small_data_dir
    cfg = f1_tiny()
    expected, _ = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    interrupt_after(2, after)
    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    history, result = _resume(cfg, tmp_path / "b", data_dir)
    pd.testing.assert_frame_equal(measured(history), measured(expected))
    assert result["scale"]["epochs_run"] == cfg.epochs == len(history)
    assert result["resumed_at_epochs"] == ([1] if after == "history.csv" else [2])


def test_restart_over_a_finished_run_never_leaves_a_stale_result(tmp_path, small_data_dir,
                                                                   interrupt_after):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny()
    out = tmp_path / "run"
    run(cfg, out, data_dir=data_dir, progress=False)
    assert (out / "result.json").exists()
    interrupt_after(1)
    with pytest.raises(Interrupt):
        run(cfg, out, data_dir=data_dir, progress=False, resume=False)
    assert not (out / "result.json").exists()  # gone before the new history was written
    history, result = _resume(cfg, out, data_dir)
    assert len(history) == result["scale"]["epochs_run"] == cfg.epochs


def test_a_result_is_only_returned_with_its_own_history(tmp_path, small_data_dir):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny(epochs=3)
    out = tmp_path / "run"
    run(cfg, out, data_dir=data_dir, progress=False)
    history = pd.read_csv(out / "history.csv")
    history.iloc[:2].to_csv(out / "history.csv", index=False)  # a history of another run
    (out / "checkpoint.keras").unlink()
    again, result = run(cfg, out, data_dir=data_dir, progress=False)
    assert len(again) == result["scale"]["epochs_run"] == 3
    assert list(out.glob("history.abandoned-*.csv"))  # the old history was kept


def test_resume_keeps_the_initialisation_tables(tmp_path, small_data_dir, interrupt_after):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny()
    _, expected = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    assert expected["init_tables"]["shared_value"], "F1 records its shared-value table"
    interrupt_after(1)
    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    _, result = _resume(cfg, tmp_path / "b", data_dir)
    assert _table_values(result["init_tables"]) == _table_values(expected["init_tables"])


def _table_values(tables: dict) -> dict:
    """Initialisation tables without layer names (they count the models a process made)."""
    return {k: [{c: v for c, v in row.items() if c not in ("layer", "variable")}
                for row in rows] for k, rows in tables.items()}


def _small_mnist(folder: Path, data_dir: Path, n: int = 600, n_test: int = 500,
                 dataset: str = "mnist") -> Path:
    """The first ``n`` training and ``n_test`` test images of MNIST (or ``dataset``)."""
    folder.mkdir()
    with np.load(data_dir / f"{dataset}.npz") as d:
        np.savez(folder / f"{dataset}.npz", x_train=d["x_train"][:n], y_train=d["y_train"][:n],
                 x_test=d["x_test"][:n_test], y_test=d["y_test"][:n_test])
    return folder


def test_a_run_made_on_other_data_is_never_reused(tmp_path, data_dir):
    small = _small_mnist(tmp_path / "small", data_dir)
    cfg = f1_small(epochs=1, validation_size=100, train_fraction=1.0, paper_epochs=1)
    out = tmp_path / "run"
    run(cfg, out, data_dir=small, progress=False)
    with pytest.raises(RunDirError, match="other mnist data"):
        run(cfg, out, data_dir=data_dir, progress=False)


def test_a_legacy_record_on_other_data_is_refused(tmp_path, data_dir):
    """Records written before fingerprints: their test-set size is compared."""
    small = _small_mnist(tmp_path / "small", data_dir)
    cfg = f1_small(epochs=1, validation_size=100, train_fraction=1.0, paper_epochs=1)
    out = tmp_path / "run"
    run(cfg, out, data_dir=small, progress=False)
    stored = json.loads((out / "config.json").read_text())
    del stored["provenance"]
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(RunDirError, match="500 test images, now 10000"):
        run(cfg, out, data_dir=data_dir, progress=False)
    again, _ = run(cfg, out, data_dir=small, progress=False)  # the same data: reused
    assert len(again) == 1


def test_a_run_made_with_another_backend_is_reused_only_when_asked(tmp_path, small_data_dir):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny(epochs=1)
    out = tmp_path / "run"
    _, first = run(cfg, out, data_dir=data_dir, progress=False)
    stored = json.loads((out / "config.json").read_text())
    stored["provenance"]["backend"] = "jax"
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(RunDirError, match="backend 'jax'.*allow_other_backend"):
        run(cfg, out, data_dir=data_dir, progress=False)
    _, again = run(cfg, out, data_dir=data_dir, progress=False, allow_other_backend=True)
    assert again["final_test_accuracy"] == first["final_test_accuracy"]


def test_a_folder_of_another_config_is_refused_and_not_touched(tmp_path, small_data_dir):
    data_dir = small_data_dir  # a few hundred images
    out = tmp_path / "run"
    run(f1_tiny(epochs=1), out, data_dir=data_dir, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(RunDirError, match="different config"):
        run(f1_tiny(epochs=2), out, data_dir=data_dir, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_missing_data_leaves_no_folder(tmp_path, monkeypatch):
    """No local file and no download: DataNotFoundError says where it looked and
    why the download failed, and no run folder is made."""
    import re

    from laperm import data
    from laperm.data import DataNotFoundError

    def offline(name):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.datasets, "_download_cached", offline)  # never the real network
    monkeypatch.delenv("LAPERM_DATA_DIR", raising=False)
    missing = tmp_path / "empty" / "mnist.npz"
    out = tmp_path / "run"
    with pytest.raises(DataNotFoundError, match=re.escape(
            f"mnist dataset not found: no mnist.npz in {missing} and downloading with "
            "keras.datasets.mnist.load_data() failed (OSError: network is unreachable).")):
        run(f1_small(epochs=1), out, data_dir=missing, progress=False)
    assert not out.exists()


def test_temporary_files_are_cleaned_on_the_next_start(tmp_path, small_data_dir, interrupt_after):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny(epochs=2)
    out = tmp_path / "run"
    interrupt_after(1)
    with pytest.raises(Interrupt):
        run(cfg, out, data_dir=data_dir, progress=False)
    for name in ("checkpoint.tmp.keras", "history.tmp.csv", "best-e0002.tmp.weights.h5"):
        (out / name).write_bytes(b"half-written")
    _resume(cfg, out, data_dir)
    assert not list(out.glob("*.tmp*"))


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "history.csv"

    def write(tmp):
        tmp.write_text("partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        runfiles.atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []


def test_mixed_float16_run_is_recorded_as_laperm(tmp_path, data_dir):
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        history, result = run(f1_small(epochs=2, sync_period=20), tmp_path / "run", data_dir=data_dir,
                              progress=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert result["evaluated_on_synchronised_weights"]
    assert history["sync_count"].iloc[-1] >= 1


def test_scale_label_of_more_epochs_than_the_paper():
    cfg = paper_config("f1", epochs=50)
    assert not cfg.is_paper_scale and cfg.scale_label.startswith("extended: 50 epochs")
    assert paper_config("f1").scale_label == "paper scale"
    assert paper_config("conv2", epochs=8).scale_label == "reduced: 8 of 125 epochs"


@pytest.mark.slow
def test_import_laperm_registers_keras_classes_in_a_new_process(tmp_path):
    """``import laperm`` alone lets ``keras.models.load_model`` read a LaPerm
    model, and every module the README names is reachable from ``laperm``."""
    script = textwrap.dedent(f"""
        import keras, numpy as np, laperm
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        k = laperm.PiecewiseSyncPeriod([1], [1, 2])
        m.compile(laperm.LaPerm(keras.optimizers.Adam(), sync_period=k), "mse")
        m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
        m.save({str(tmp_path / 'm.keras')!r})
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    load = textwrap.dedent(f"""
        import keras, laperm
        m = keras.models.load_model({str(tmp_path / 'm.keras')!r})
        assert type(m.optimizer).__name__ == "LaPerm", type(m.optimizer)
        import functools
        for name in ("pretrained", "experiment", "data", "models", "pruning", "viz",
                     "analysis.profiles", "method.callbacks", "reproduce"):
            module = functools.reduce(getattr, name.split("."), laperm)
            assert hasattr(module, "__file__"), name
        assert callable(laperm.pretrained.load)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.slow
def test_batchnorm_run_is_evaluated_three_ways(tmp_path, small_data_dir):
    """Conv2 (BatchNorm): re-estimated statistics are the primary number; the
    stale statistics and the unsynchronised weights are logged beside them."""
    # 100 training images (2 steps), 50 validation and 50 test images
    data_dir = _small_mnist(tmp_path / "tiny", small_data_dir, n=150, n_test=50,
                            dataset="cifar10")
    cfg = paper_config("conv2", epochs=1, bn_batches=4, validation_size=50)
    history, result = run(cfg, tmp_path / "laperm", data_dir=data_dir, progress=False)
    row = history.iloc[-1]
    for column in ("test_accuracy", "test_accuracy_stale_bn", "val_accuracy_stale_bn",
                   "test_accuracy_unsynced", "bn_recalibration_s"):
        assert np.isfinite(row[column]), column
    assert "re-estimated on 4 batches" in result["evaluation"]
    assert result["final_test_accuracy"] == pytest.approx(row["test_accuracy"])
    assert cfg.hash != paper_config("conv2", epochs=1, validation_size=50).hash
    _, adam = run(cfg.adam_baseline(), tmp_path / "adam", data_dir=data_dir, progress=False)
    assert adam["final_test_accuracy_recalibrated_bn_adam"] is not None
    assert "as trained" in adam["evaluation"]


def test_precision_option(tmp_path, data_dir):
    import keras

    with pytest.raises(ValueError, match="valid: float32, mixed_bfloat16, mixed_float16"):
        paper_config("f1", precision="half")
    assert paper_config("f1", precision="float32").hash == paper_config("f1").hash
    cfg = f1_small(epochs=1, sync_period=20, precision="mixed_bfloat16")
    assert cfg.hash != f1_small(epochs=1, sync_period=20).hash
    before = keras.mixed_precision.global_policy().name
    _, result = run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    assert keras.mixed_precision.global_policy().name == before  # put back
    assert result["precision"] == "mixed_bfloat16"
    model = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert model.layers[-1].compute_dtype == "bfloat16"
    opt = laperm_optimizer(model)
    assert all(v.dtype == "float32" for v in opt.permuted_variables + opt.sorted_initial_values)


def laperm_optimizer(model):
    import laperm

    return laperm.find_laperm(model)


def test_a_run_in_progress_is_recorded_as_a_reduced_run(tmp_path, data_dir, interrupt_after):
    from laperm.reproduce import run_name
    from laperm.run.train import snapshot_partial

    cfg = f1_small(epochs=3)
    out = tmp_path / run_name(cfg)
    interrupt_after(2)
    with pytest.raises(Interrupt):
        run(cfg, out, data_dir=data_dir, progress=False)
    name, result = snapshot_partial(out, tmp_path, run_name)
    assert name == run_name(cfg.replace(epochs=2)) and (tmp_path / name / "result.json").exists()
    assert result["scale"]["label"] == "reduced: 2 of 10 epochs, 10% of the training set"
    assert result["scale"]["n_test"] == 10000 and "snapshot_of" in result
    history, finished = _resume(cfg, out, data_dir)  # the run itself goes on untouched
    assert finished["test_accuracy_at_best_val"] is not None and len(history) == 3
    assert snapshot_partial(out, tmp_path, run_name) is None  # finished: nothing to record


def test_a_crash_before_the_first_checkpoint_starts_cleanly(tmp_path, small_data_dir, interrupt_after):
    data_dir = small_data_dir  # a few hundred images
    cfg = f1_tiny(epochs=2)
    out = tmp_path / "run"
    interrupt_after(1, "history.csv")
    with pytest.raises(Interrupt):
        run(cfg, out, data_dir=data_dir, progress=False)
    assert not (out / "checkpoint.keras").exists() and (out / "history.csv").exists()
    history, _ = _resume(cfg, out, data_dir)
    assert len(history) == 2 and not list(out.glob("history.abandoned-*"))


def test_a_mixed_float16_run_resumes_to_the_uninterrupted_history(tmp_path, small_data_dir,
                                                                  interrupt_after, monkeypatch):
    """The resume point counts epochs: the loss-scale optimizer skips (and does
    not count) the steps whose gradients overflowed (here the first 9 or so of 21)."""
    import keras
    from keras.src.optimizers.loss_scale_optimizer import LossScaleOptimizer

    from laperm.run.train import _dtype_policy

    real_init = LossScaleOptimizer.__init__

    def overflowing(self, inner, initial_scale=None, *args, **kwargs):
        real_init(self, inner, 2.0**24, *args, **kwargs)  # the first steps overflow

    monkeypatch.setattr(LossScaleOptimizer, "__init__", overflowing)

    data_dir = small_data_dir
    cfg = f1_tiny(epochs=3, precision="mixed_float16")
    expected, reference = run(cfg, tmp_path / "a", data_dir=data_dir, progress=False)
    interrupt_after(2)
    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "b", data_dir=data_dir, progress=False)
    with _dtype_policy(cfg.precision):  # as run() loads it
        saved = keras.models.load_model(tmp_path / "b" / "checkpoint.keras")
    counted = int(saved.optimizer.iterations)
    steps_per_epoch = -(-reference["scale"]["n_train"] // cfg.batch_size)
    assert counted < 2 * steps_per_epoch, "no overflow was skipped: the test proves nothing"
    assert counted > 0, "every step overflowed: nothing was trained"
    history, result = _resume(cfg, tmp_path / "b", data_dir)
    pd.testing.assert_frame_equal(measured(history), measured(expected))
    assert result["resumed_at_epochs"] == [2]
