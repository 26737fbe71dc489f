"""The device engine (:mod:`laperm.run.engine`) against the ``fit`` engine, under JAX.

Run in the JAX tier (``scripts/test_jax.sh``); under another Keras backend only
the refusal is tested.  Tolerances: both engines run the same Keras layers and
the same optimizer on the same batches, so losses agree to float32 rounding of
differently fused programs (rtol 1e-5); an accuracy may differ by a sample or
two, where rounding flips a near tie between two classes.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from laperm.run.engine import EngineError, check_engine
from laperm.experiment import paper_config, run

JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not JAX, reason="the device engine runs under the JAX backend")
COLUMNS = ("loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
           "test_accuracy_unsynced", "val_accuracy_stale_bn", "test_accuracy_stale_bn",
           "learning_rate", "sync_count")


def _tiny(name):
    """A tiny run and its steps per call: several syncs, a partial last batch."""
    if name == "f1":  # no BatchNorm; 21 full batches of 128 and one of 62 per epoch
        return paper_config("f1", epochs=2, train_fraction=0.05, validation_size=500,
                            sync_period=5), 2
    # BatchNorm, dropout, L2; 2 batches of 50 and one of 25 per epoch, a sync every 2 steps
    # (steps 2, 4 and 6: the last one in the partial batch's program).
    # One step per call: XLA compiles a scan of convolutions for minutes on a CPU.
    # (On small_data_dir's 450 CIFAR-10 training images, 200 of them the validation split.)
    return paper_config("conv2", epochs=2, train_fraction=0.5, validation_size=200,
                        sync_period=2, augmentation=None, bn_batches=2), 1


def _same_history(device, fit, n_train, n_val, n_test):
    for column in COLUMNS:
        a, b = device[column].to_numpy(float), fit[column].to_numpy(float)
        if "accuracy" in column:  # two images' worth (training: of at most 200 images)
            n = {"train": min(n_train, 200), "val": n_val}.get(column.split("_")[0], n_test)
            tol = 2.0 / n
            np.testing.assert_allclose(a, b, atol=tol, err_msg=column)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=column)


@pytest.mark.skipif(JAX, reason="tests the refusal under another backend")
def test_the_device_engine_refuses_another_backend_in_one_line(tmp_path, capsys):
    with pytest.raises(EngineError, match="needs the JAX Keras backend"):
        check_engine("device")
    from laperm.reproduce import main

    assert main(["f1", "--engine", "device", "--epochs", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the device engine needs the JAX")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_engine_is_refused():
    with pytest.raises(EngineError, match="unknown engine 'gpu'; valid: fit, device"):
        check_engine("gpu")


@needs_jax
@pytest.mark.parametrize("name", ["f1", "conv2"])
def test_the_device_engine_gives_the_fit_history(name, tmp_path, data_dir, small_data_dir,
                                                 monkeypatch):
    from laperm.run.engine import DeviceTrainer

    cfg, steps_per_call = _tiny(name)
    if name == "conv2":  # 200 test images, not 1000: the evaluations dominated this test
        data_dir = small_data_dir
    fit, rf = run(cfg, tmp_path / "fit", data_dir=data_dir, progress=False)
    evaluations = []  # LaPerm: one sync of the weights per evaluation of a state
    synchronised = DeviceTrainer.synchronised
    monkeypatch.setattr(DeviceTrainer, "synchronised",
                        lambda self, tv, ov: evaluations.append(1) or synchronised(self, tv, ov))
    device, rd = run(cfg, tmp_path / "device", data_dir=data_dir, progress=False,
                     engine="device", steps_per_call=steps_per_call)
    # the final evaluation is the last epoch's, not made twice (the state is the same)
    assert len(evaluations) == cfg.epochs
    assert rd["engine"] == "device" and rf["engine"] == "fit"
    assert rd["config_hash"] == rf["config_hash"]  # an execution detail, outside the hash
    assert rd["steps_per_call"] == steps_per_call and rd["host_round_trips_per_epoch"] > 0
    assert device["sync_count"].iloc[-1] >= 3  # several syncs happened
    n_val, n_test = rf["scale"]["n_val"], rf["scale"]["n_test"]
    _same_history(device, fit, rf["scale"]["n_train"], n_val, n_test)
    for key in ("best_epoch",):
        assert rd[key] == rf[key]
    assert abs(rd["final_test_accuracy"] - rf["final_test_accuracy"]) <= 2.0 / n_test


@needs_jax
def test_after_every_sync_each_vector_is_a_permutation_of_theta0(small_data_dir):
    from laperm.method import ops as lops
    from laperm.run.train import build_model, build_optimizer, load_splits

    # the fit-history test's Conv2 run (no augmentation: the sync is what is tested), so its
    # step is the same program (JAX's persistent compilation cache: compiled once in a tier)
    cfg, _ = _tiny("conv2")
    assert cfg.sync_period == 2
    data_dir = small_data_dir
    model, _ = build_model(cfg)
    model.compile(optimizer=build_optimizer(cfg), loss="sparse_categorical_crossentropy")
    from laperm.run.engine import DeviceTrainer

    trainer = DeviceTrainer(cfg, model, load_splits(cfg, data_dir), steps_per_call=1)
    theta0 = [np.sort(np.asarray(lops.to_rows(model.trainable_variables[i].value)), axis=1)
              for i in trainer.layout.permuted]
    assert theta0, "conv2 has permuted variables"
    for _ in range(2):  # two syncs, two steps apart (full batches: the steps 0 and 1)
        trainer.run_steps(0, 0, 2)
        tv = trainer.state[0]
        for i, sorted0 in zip(trainer.layout.permuted, theta0):
            rows = np.sort(np.asarray(lops.to_rows(tv[i])), axis=1)
            np.testing.assert_array_equal(rows, sorted0)
    assert trainer.sync_count() == 2


@needs_jax
def test_a_killed_run_resumes_to_the_uninterrupted_history(tmp_path, small_data_dir,
                                                           monkeypatch):
    from laperm.run.engine import DeviceTrainer

    data_dir = small_data_dir  # 200 test images: the evaluations dominated this test
    # BatchNorm, dropout and the augmentation: all three draw from (seed, epoch, step);
    # 100 of the 250 training images (2 steps of 50) per epoch; the one sync, at step 3, is
    # in the resumed epoch (LaPerm's step count comes back from the checkpoint); 200
    # validation images, as many as test images: one evaluation program
    cfg = paper_config("conv2", epochs=2, train_fraction=0.4, validation_size=200,
                       sync_period=3, bn_batches=1)
    whole, _ = run(cfg, tmp_path / "whole", data_dir=data_dir, progress=False, engine="device")
    original = DeviceTrainer.train_epoch

    def killed_in_epoch_2(self, epoch, on_steps=None):
        if epoch == 1:  # 0-based: the second epoch, after the first one's checkpoint
            raise KeyboardInterrupt
        return original(self, epoch, on_steps)

    monkeypatch.setattr(DeviceTrainer, "train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", data_dir=data_dir, progress=False, engine="device")
    monkeypatch.setattr(DeviceTrainer, "train_epoch", original)
    resumed, result = run(cfg, tmp_path / "cut", data_dir=data_dir, progress=False,
                          engine="device")
    assert result["resumed_at_epochs"] == [1]
    assert list(whole["sync_count"]) == [0, 1]
    for column in COLUMNS:
        np.testing.assert_array_equal(resumed[column].to_numpy(float),
                                      whole[column].to_numpy(float), err_msg=column)


@needs_jax
def test_the_augmentation_draws_the_fit_paths_transforms():
    """Same layers (ranges, fill mode, interpolation); independent, uniform draws per key."""
    import jax

    from laperm.data import augmentation_layers
    from laperm.run.engine import _FoldInSeeds

    layers = augmentation_layers("cifar_conv").layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomRotation", "RandomTranslation", "RandomFlip"]
    rotation, translation, flip = layers
    assert rotation.fill_mode == translation.fill_mode == "nearest"
    assert rotation.interpolation == translation.interpolation == "bilinear"
    images = np.zeros((4000, 8, 8, 3), np.float32)
    key = jax.random.PRNGKey(7)
    angle = np.asarray(rotation.get_random_transformation(
        images, seed=_FoldInSeeds(jax.random.fold_in(key, 0)))["angle"])
    shift = translation.get_random_transformation(images,
                                                  seed=_FoldInSeeds(jax.random.fold_in(key, 1)))
    flips = np.asarray(flip.get_random_transformation(
        images, seed=_FoldInSeeds(jax.random.fold_in(key, 2)))["flips"])
    # rotation: uniform on [-15, 15] degrees (std 30 / sqrt(12) = 8.66)
    assert np.abs(angle).max() <= 15.0 + 1e-4 and abs(angle.mean()) < 0.5
    assert abs(angle.std() - 30 / np.sqrt(12)) < 0.3
    # translation: height and width drawn independently (a shared key would make them equal)
    dx = np.asarray(shift["translations"])[:, 0]
    dy = np.asarray(shift["translations"])[:, 1]
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 0.06 and np.abs(dx).max() <= 0.1 * 8 + 1e-4
    assert abs(flips.mean() - 0.5) < 0.03
    # a pure function of the key: the same key, the same draws
    again = np.asarray(rotation.get_random_transformation(
        images, seed=_FoldInSeeds(jax.random.fold_in(key, 0)))["angle"])
    np.testing.assert_array_equal(angle, again)


@needs_jax
@pytest.mark.parametrize("n, shape", [(100, (1, 100)), (200, (1, 200)), (500, (1, 500)),
                                      (1000, (2, 500)), (1200, (3, 400)), (10000, (20, 500))])
def test_a_set_is_evaluated_in_the_fewest_equal_batches_of_at_most_500(n, shape):
    """Little padding: a set of 200 is one batch of 200, not 500 with 300 blanks."""
    import jax.numpy as jnp

    from laperm.run.engine import DeviceTrainer

    x = jnp.arange(n, dtype=jnp.int32).reshape(n, 1, 1, 1) + 1
    xb, yb, mask, count = DeviceTrainer._eval_batches(None, x, jnp.arange(n, dtype=jnp.int32))
    assert xb.shape == shape + (1, 1, 1) and yb.shape == mask.shape == shape and count == n
    flat = np.asarray(xb).reshape(-1)
    np.testing.assert_array_equal(flat[:n], np.arange(n) + 1)  # every image once, in order
    assert float(np.asarray(mask).sum()) == n and not flat[n:].any()  # then blanks, masked
    assert np.asarray(mask).reshape(-1)[:n].all()


@needs_jax
@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "mixed_float16"}, "does not run mixed_float16"),
])
def test_what_the_engine_cannot_run_is_refused_before_anything_is_written(
        kwargs, message, tmp_path, data_dir):
    cfg = paper_config("f1", epochs=1, train_fraction=0.01, **kwargs)
    with pytest.raises(EngineError, match=message):
        run(cfg, tmp_path / "run", data_dir=data_dir, progress=False, engine="device")
    assert not (tmp_path / "run").exists()


@needs_jax
@pytest.mark.parametrize("kwargs, message", [
    ({"steps_per_call": 0}, "steps_per_call must be a positive integer"),
    ({"devices": 64}, "64 devices asked for, 1 present"),
    ({"matmul_precision": "tf32"}, "unknown matmul_precision 'tf32'"),
])
def test_bad_engine_options_are_one_clear_error(kwargs, message, tmp_path, data_dir):
    cfg = paper_config("f1", epochs=1, train_fraction=0.01)
    with pytest.raises(EngineError, match=message):
        run(cfg, tmp_path / "run", data_dir=data_dir, progress=False, engine="device", **kwargs)


@needs_jax
@pytest.mark.parametrize("fails_at", [0, 1])
def test_a_run_that_does_not_fit_in_device_memory_is_one_line(fails_at, tmp_path, data_dir,
                                                               monkeypatch):
    from laperm.run.engine import DeviceTrainer

    original = DeviceTrainer.train_epoch

    def out_of_memory_at(self, epoch, on_steps=None):
        if epoch == fails_at:  # what XLA raises (jaxlib's XlaRuntimeError is a RuntimeError)
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
                               "1073741824 bytes.")
        return original(self, epoch, on_steps)

    monkeypatch.setattr(DeviceTrainer, "train_epoch", out_of_memory_at)
    cfg = paper_config("f1", epochs=2, train_fraction=0.01, validation_size=100)
    folder = tmp_path / "run"
    with pytest.raises(EngineError, match="did not fit in the memory of") as info:
        run(cfg, folder, data_dir=data_dir, progress=False, engine="device")
    assert "\n" not in str(info.value) and "run fewer runs at once" in str(info.value)
    if fails_at == 0:  # nothing was recorded: no record is left behind
        assert "no epoch was recorded" in str(info.value)
        assert sorted(p.name for p in folder.iterdir()) == []
    else:  # the finished epoch stays, and the same call resumes the run
        assert "its 1 finished epochs are kept" in str(info.value)
        assert (folder / "checkpoint.keras").exists() and not (folder / "result.json").exists()
        monkeypatch.setattr(DeviceTrainer, "train_epoch", original)
        history, result = run(cfg, folder, data_dir=data_dir, progress=False, engine="device")
        assert len(history) == 2 and result["resumed_at_epochs"] == [1]


@needs_jax
def test_two_devices_give_the_one_device_history(tmp_path):
    """Each batch split over two simulated CPU devices: the same run, float rounding aside.

    Adam, whose arithmetic is the same reduced in another order.  (A LaPerm run
    drifts: a rounding difference can flip the ranks of two nearly equal weights
    at a sync; on Conv2 the validation loss moved 1e-4 relative after two syncs.)
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "distributed" / "check_engine_devices.py"
    # The CPU code generator unoptimised (LLVM -O0; both runs alike, the sharding is XLA's
    # HLO partitioning, done all the same): the four programs compile in half the time, and
    # this test's six steps and its evaluations lose less than that (44 -> 34 s CPU).
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"
                        " --xla_backend_optimization_level=0"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["devices_present"] == 2
    r = result["adam"]
    assert r["engine_devices"] == [1, 2] and r["hash"][0] == r["hash"][1]
    one, two = r["one"], r["two"]
    for column in ("loss", "val_loss", "test_loss"):
        np.testing.assert_allclose(two[column], one[column], rtol=1e-4, err_msg=column)
    for column in ("val_accuracy", "test_accuracy"):
        n = 100 if column.startswith("val") else 1000
        np.testing.assert_allclose(two[column], one[column], atol=2.0 / n, err_msg=column)
