"""Train one experiment and measure it honestly (Section 5).

:func:`run` trains an :class:`~laperm.config.ExperimentConfig` and returns a
per-epoch history DataFrame and a JSON-able result record.  The best epoch is
chosen on a held-out validation split; a LaPerm network is judged on its
synchronised weights (:mod:`laperm.run.evaluation`).

Runs survive being killed: after every epoch the history and then the model
(with the optimizer state and sorted theta_0) are written atomically to the
run folder (:mod:`laperm.run.files`); calling :func:`run` again with the same
config, in any process, continues from the last checkpoint and gives the
history of the uninterrupted run.  A folder made on other data, or with
another Keras backend, is refused.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import math
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from laperm import data, models, pruning
from laperm.run import files as runfiles
from laperm.run.backends import seed_generator_states, seed_global_generator
from laperm.method.batchnorm import (DEFAULT_BATCH_SIZE, batch_rows, batchnorm_layers,
                              recalibrated_batchnorm)
from laperm.method.callbacks import NonFiniteGuard
from laperm.config import ExperimentConfig, learning_rate_at
from laperm.config import steps_per_epoch as epoch_steps
from laperm.data import FULL_TEST_SIZE
from laperm.run.devices import data_parallel
from laperm.run.engine import (DeviceTrainer, EngineError, check_engine, device_mesh, is_out_of_memory,
                           out_of_memory_error)
from laperm.run.evaluation import best_so_far, evaluate, evaluate_three_ways, evaluation_note, laperm_of
from laperm.method.fused import fuse_model, make_adam
from laperm.run.hardware import warn_if_bfloat16_is_emulated
from laperm.method.optimizer import LaPerm
from laperm.paper import PAPER_ACCURACY
from laperm.run.provenance import environment_info, run_provenance
from laperm.run.files import RunFiles


class TrainFractionError(ValueError):
    """A ``train_fraction`` that keeps no training image of the data."""


def load_splits(config: ExperimentConfig, data_dir=None) -> dict:
    """The arrays of a config: training, validation and test splits (no pipelines).

    Raises:
        TrainFractionError: ``config.train_fraction`` keeps no training image.
    """
    (x_train, y_train), (x_test, y_test) = data.load(config.dataset, data_dir)
    (x_tr, y_tr), (x_val, y_val) = data.train_val_split(
        x_train, y_train, config.validation_size, seed=config.seed
    )
    if round(config.train_fraction * len(x_tr)) < 1:
        raise TrainFractionError(
            f"train_fraction={config.train_fraction:g} keeps none of the {len(x_tr)} training "
            f"images of {config.dataset}; use at least {1 / len(x_tr):.2g} (one image).")
    if config.train_fraction < 1:
        x_tr, y_tr = data.subset(x_tr, y_tr, float(config.train_fraction), seed=config.seed)
    return {"train": (x_tr, y_tr), "val": (x_val, y_val), "test": (x_test, y_test),
            "info": data.describe(config.dataset, data_dir)}


def prepare_data(config: ExperimentConfig, data_dir=None, first_epoch: int = 0,
                 splits: dict | None = None) -> dict:
    """Splits, preprocessing and input pipelines of a config.

    The training pipeline holds epochs ``first_epoch .. config.epochs - 1``;
    the order and augmentation of each are functions of ``(seed, epoch)``
    (:func:`laperm.data.make_dataset`), so a resumed run sees the batches of
    the uninterrupted one.  The pipelines are ``tf.data`` datasets under the
    TensorFlow Keras backend and ``keras.utils.PyDataset`` s under any other
    (no TensorFlow needed).  ``bn_images()`` returns the preprocessed training
    images of the BatchNorm re-estimation (None when ``bn_batches`` is 0),
    made on the first call.
    """
    splits = splits or load_splits(config, data_dir)
    (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    pre = data.make_preprocessor(config.preprocessing, x_tr)
    remaining = config.epochs - int(first_epoch)
    return {
        "train": data.make_dataset(
            x_tr, y_tr, config.batch_size, preprocess=pre, augment=config.augmentation,
            shuffle=True, seed=config.seed, epochs=max(remaining, 1), first_epoch=first_epoch,
        ),
        "val": data.make_dataset(x_val, y_val, 500, preprocess=pre),
        "test": data.make_dataset(x_test, y_test, 500, preprocess=pre),
        "n_train": int(len(x_tr)),
        "n_val": int(len(x_val)),
        "n_test": int(len(x_test)),
        "test_note": splits["info"].test_note,
        "steps_per_epoch": epoch_steps(len(x_tr), config.batch_size),
        # made on first use (only BatchNorm models need them), then kept
        "bn_images": functools.cache(lambda: _bn_images(config, x_tr, pre)),
    }


def bn_image_indices(config: ExperimentConfig, n_train: int) -> np.ndarray:
    """The training images of the BatchNorm re-estimation (sorted indices), or None."""
    if config.bn_batches == 0:
        return None
    need = min(n_train, config.bn_batches * DEFAULT_BATCH_SIZE)
    return np.sort(np.random.default_rng([config.seed, 0xB1]).choice(n_train, need,
                                                                       replace=False))


def bn_batch_indices(config: ExperimentConfig, n_train: int) -> np.ndarray:
    """The re-estimation batches as indices into the training split: ``(batches, 50)``.

    What :func:`laperm.method.batchnorm.recalibrate_batchnorm` averages over when it is
    given the images of :func:`bn_image_indices` and ``seed=config.seed``.
    """
    idx = bn_image_indices(config, n_train)
    return idx[batch_rows(len(idx), config.bn_batches, DEFAULT_BATCH_SIZE, config.seed)]


def _bn_images(config: ExperimentConfig, x_tr, pre):
    """The preprocessed training images of the BatchNorm re-estimation (no augmentation)."""
    idx = bn_image_indices(config, len(x_tr))
    return None if idx is None else pre(np.asarray(x_tr)[idx])


def build_model(config: ExperimentConfig):
    """The model of a config with its initial weights (pruned / shared value)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    model = models.get(config.model)
    if config.kernels == "fused":
        model = fuse_model(model)  # same theta_0, the fused layers of laperm.method.fused
    tables = {}
    if config.prune_keep is not None and config.prune_keep < 1:
        tables["pruning"] = pruning.random_prune(
            model, config.prune_keep, first_layer_keep=config.first_layer_keep, seed=config.seed
        )
    if config.shared_value is not None:
        keep = config.shared_keep
        keep = list(keep) if isinstance(keep, tuple) else keep
        tables["shared_value"] = pruning.shared_value(
            model, config.shared_value, keep if keep is not None else 1.0, seed=config.seed,
            mask=config.shared_mask,
        )
    return model, tables


def build_optimizer(config: ExperimentConfig):
    """Adam (or :class:`laperm.method.fused.FusedAdam`), wrapped in LaPerm unless the config is the
    Adam baseline."""
    adam = make_adam(config.learning_rate, config.kernels)
    if config.optimizer == "adam":
        return adam
    return LaPerm(adam, sync_period=config.sync_period, skip_bias=config.skip_bias,
                  skip_bn=config.skip_bn)


def _wall_time(rows: list[dict]) -> float:
    if not rows:
        return 0.0
    last = rows[-1].get("wall_time_s")
    if last is not None and not (isinstance(last, float) and math.isnan(last)):
        return float(last)
    return float(sum(r.get("epoch_time_s", 0.0) for r in rows))


def epoch_seed_states(seed: int, epoch: int, count: int) -> list[np.ndarray]:
    """The dropout seed states of epoch ``epoch``: one ``[s, 0]`` per random layer."""
    states = []
    for i in range(count):
        rng = np.random.default_rng([int(seed), int(epoch), i, 0x5EED])
        states.append(np.array([rng.integers(0, 2**31 - 1), 0]))
    return states


def _seed_states(model, seed: int, epoch: int) -> None:
    """Set every random layer's seed state (dropout) from (seed, epoch).

    Keras does not save seed-generator states with a model, so a resumed run
    would draw other dropout masks; setting them at the start of every epoch
    makes epoch e's draws a function of (seed, e) in every process.  (Under
    torch, unseeded dropout draws from torch's global generator instead: see
    :func:`_seed_global_generator`.)
    """
    variables = seed_generator_states(model)
    for v, state in zip(variables, epoch_seed_states(seed, epoch, len(variables))):
        v.assign(state.astype(v.dtype))


def _seed_global_generator(seed: int, epoch: int) -> None:
    """Seed torch's global generator from (seed, epoch) before the epoch's first step.

    Under torch, unseeded dropout draws from it.  It is seeded at the first
    batch, not at the start of the epoch: the torch ``DataLoader`` that Keras
    wraps around the data draws from it when the epoch's iterator is made,
    which an uninterrupted run does once and a resumed run at the epoch it
    resumes at.  A no-op under TensorFlow and JAX.
    """
    seed_global_generator([int(seed), int(epoch), 0x5EED])


class _EpochEnd:
    """Evaluation on synchronised weights, best-on-validation, checkpoints."""

    def __init__(self, config, model, pipes, files, rows, progress, wall_before):
        self.config, self.model, self.pipes, self.files = config, model, pipes, files
        self.rows, self.progress = rows, progress
        self.best = best_so_far(rows)
        self.epoch = 0
        self.steps_done = 0  # steps of this epoch so far
        self.t_epoch = time.perf_counter()
        self.t_start = time.perf_counter()
        self.wall_before = wall_before

    def _save_if_best(self, epoch_number):
        """Called with the primary validation accuracy while the judged weights are in place."""

        def save(val_acc):
            if val_acc > self.best["best_val_accuracy"] and self.files is not None:
                runfiles.atomic_save(self.model, self.files.best_of_epoch(epoch_number),
                             weights_only=True)

        return save

    def callback(self):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                _seed_states(outer.model, outer.config.seed, epoch)
                outer.epoch, outer.steps_done = epoch, 0
                outer.t_epoch = time.perf_counter()

            def on_train_batch_begin(self, batch, logs=None):
                if batch == 0:
                    _seed_global_generator(outer.config.seed, outer.epoch)

            def on_train_batch_end(self, batch, logs=None):
                # called once per execution, with the index of its last step
                if outer.progress is not None:
                    outer.progress.update(batch + 1 - outer.steps_done)
                outer.steps_done = batch + 1

            def on_epoch_end(self, epoch, logs=None):
                outer.epoch_end(epoch, logs or {})

        return Callback()

    def epoch_end(self, epoch, logs):
        from keras import ops

        optimizer = self.model.optimizer
        laperm = laperm_of(optimizer)
        epoch_number = epoch + 1
        scores = evaluate_three_ways(self.config, self.model, laperm, self.pipes,
                                      on_best=self._save_if_best(epoch_number))
        val_acc, test_acc = scores["val"][1], scores["test"][1]
        improved = val_acc > self.best["best_val_accuracy"]
        row = _history_row(
            epoch_number, scores, loss=float(logs.get("loss", np.nan)),
            train_accuracy=float(logs.get("accuracy", np.nan)),
            learning_rate=float(ops.convert_to_numpy(optimizer.learning_rate)),
            sync_count=int(ops.convert_to_numpy(laperm.sync_count)) if laperm else 0,
            epoch_time_s=time.perf_counter() - self.t_epoch,
            wall_time_s=self.wall_before + time.perf_counter() - self.t_start)
        self.rows.append(row)
        if improved:
            self.best = best_so_far([row])
        _record_epoch(self.files, self.rows, self.model, self.config, self.best)
        if self.progress is not None:
            self.progress.set_postfix(val_acc=f"{val_acc:.4f}", test_acc=f"{test_acc:.4f}")


def _history_row(epoch_number: int, scores: dict, **measured) -> dict:
    """One ``history.csv`` row: the epoch, what training measured, and the epoch's evaluations
    (:func:`laperm.run.evaluation.evaluate_three_ways`'s keys), in the columns both engines write."""
    val_loss, val_acc = scores["val"]
    test_loss, test_acc = scores["test"]
    m = measured
    return {
        "epoch": epoch_number, "loss": m["loss"], "train_accuracy": m["train_accuracy"],
        "val_loss": val_loss, "val_accuracy": val_acc,
        "test_loss": test_loss, "test_accuracy": test_acc,
        "test_accuracy_unsynced": scores["test_unsynced"],
        "val_accuracy_stale_bn": scores["val_stale_bn"],
        "test_accuracy_stale_bn": scores["test_stale_bn"],
        "bn_recalibration_s": scores["bn_seconds"],
        "learning_rate": m["learning_rate"], "sync_count": m["sync_count"],
        "epoch_time_s": m["epoch_time_s"], "wall_time_s": m["wall_time_s"],
    }


def _record_epoch(files, rows, model, config, best) -> None:
    """Write an epoch's records: the history (with this epoch) first, then the checkpoint,
    the resume point (a resume cuts the history back to the checkpoint's epoch); then drop
    best-weight candidates other than the best epoch's."""
    if files is None:
        return
    runfiles.atomic_write_text(files.history, pd.DataFrame(rows).to_csv(index=False))
    runfiles.save_checkpoint(model, files.checkpoint, epochs_done=int(rows[-1]["epoch"]),
                             config=config)
    for e, path in files.best_candidates().items():
        if e != best["best_epoch"]:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Run under a Keras dtype policy, putting the previous one back on exit."""
    import keras

    previous = keras.mixed_precision.global_policy()

    warn_if_bfloat16_is_emulated(name)
    if name != "float32" or previous.name != "float32":
        keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def run(
    config: ExperimentConfig,
    out_dir: str | os.PathLike | None = None,
    *,
    data_dir=None,
    resume: bool = True,
    progress: bool = True,
    allow_other_backend: bool = False,
    devices: int | None = None,
    steps_per_execution: int = 1,
    engine: str = "fit",
    steps_per_call: int | None = None,
    matmul_precision: str = "highest",
) -> tuple[pd.DataFrame, dict]:
    """Train one experiment and measure it honestly.

    Args:
        config: the run (see :func:`laperm.paper.paper_config` and ``config.replace``).
        out_dir: folder for ``config.json``, ``history.csv``,
            ``checkpoint.keras`` (the resume point), ``best.weights.h5`` (best
            epoch on validation, synchronised) and ``result.json``.  None keeps
            nothing on disk (and cannot resume).
        data_dir: folder with ``mnist.npz``/``cifar10.npz`` (else
            ``$LAPERM_DATA_DIR``, else download).
        resume: continue from ``out_dir``'s checkpoint when it exists for the
            same config, data and backend; a finished run is returned as
            stored.  False starts again (the old result is deleted first).
        progress: show a progress bar (tqdm; works in notebooks).
        allow_other_backend: reuse or continue a run made with another Keras
            backend.
        devices: train data-parallel on this many devices
            (:func:`laperm.run.devices.data_parallel`; None: as Keras places it).
            The batch size stays the config's global batch; the result records
            the number of devices.
        steps_per_execution: training steps per call of the compiled train
            function (Keras's ``compile(steps_per_execution=...)``): fewer
            host round trips, the same steps, so the same history.  It must
            divide the steps of an epoch (an execution never crosses an epoch's
            end, where the evaluation and checkpoint happen); TensorFlow and
            JAX only.  Recorded in the result, outside the config hash.
        engine: ``"fit"`` (Keras's trainer, batches made on the host) or
            ``"device"`` (:mod:`laperm.run.engine`: data, augmentation, training
            and evaluation on the device, JAX only).  Both write the same run
            folder (same config hash; a run may be resumed by either); the
            result names the engine.
        steps_per_call: device engine: training steps per compiled call
            (None: a whole epoch on an accelerator, 1 on a CPU).
        matmul_precision: device engine: ``"highest"`` (full float32) or
            ``"default"`` (TF32 on NVIDIA GPUs); recorded.

    A run killed at any moment and started again gives the history of the
    uninterrupted run: the order and augmentation of epoch e and its dropout
    masks are functions of (seed, e), and the checkpoint is the only resume
    point.  The result lists the epochs at which the run was resumed.

    Returns:
        ``(history, result)``: a DataFrame with one row per epoch and the
        result record (also written to ``result.json``).

    Raises:
        RunDirError: ``out_dir`` holds a run of a different config, made on
            other data, or (unless allowed) with another backend.
        laperm.data.DataNotFoundError, laperm.data.DataFormatError: the data.
        StepsPerExecutionError: ``steps_per_execution`` is not a positive
            integer, does not divide an epoch's steps, or the backend is torch.
        laperm.run.engine.EngineError: an unknown engine, or the device engine
            where it cannot run (another backend, mixed_float16, more devices
            than there are or than divide the batch, ``steps_per_execution``).
    """
    _check_steps_per_execution(steps_per_execution)
    check_engine(engine, config.precision, steps_per_call, matmul_precision)
    if engine == "device":
        device_mesh(devices, config.batch_size)  # refused before a folder is made
    if engine == "device" and steps_per_execution != 1:
        raise EngineError("the device engine sets its own steps per call (steps_per_call); "
                          "drop steps_per_execution.")
    engine_options = ({"steps_per_call": steps_per_call, "matmul_precision": matmul_precision,
                       "devices": devices}
                      if engine == "device" else None)

    # The device engine shards its batches itself (laperm.run.engine); fit uses Keras's distribution.
    with _dtype_policy(config.precision), data_parallel(devices if engine == "fit" else None):
        return _run(config, out_dir, data_dir=data_dir, resume=resume, progress=progress,
                    allow_other_backend=allow_other_backend, devices=devices or 1,
                    steps_per_execution=int(steps_per_execution),
                    engine_options=engine_options)


class StepsPerExecutionError(ValueError):
    """A ``steps_per_execution`` that :func:`run` cannot use."""


def _check_steps_per_execution(value, steps_per_epoch: int | None = None) -> None:
    import keras

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise StepsPerExecutionError(
            f"steps_per_execution must be a positive integer; received {value!r}.")
    if value > 1 and keras.backend.backend() == "torch":
        raise StepsPerExecutionError(
            "steps_per_execution must be 1 under the torch backend (Keras runs one step "
            "per call there); use TensorFlow or JAX for more.")
    if steps_per_epoch is not None and steps_per_epoch % value:
        divisors = [d for d in range(2, min(steps_per_epoch, 100) + 1) if steps_per_epoch % d == 0]
        raise StepsPerExecutionError(
            f"steps_per_execution={value} does not divide the {steps_per_epoch} steps of an "
            "epoch, so an execution would run into the next epoch; choose one of "
            f"{', '.join(map(str, divisors[:12])) or '1'}.")


def _run(config, out_dir, *, data_dir, resume, progress, allow_other_backend, devices=1,
         steps_per_execution=1, engine_options=None):
    # The data first: a missing or damaged file leaves no folder behind.
    splits = load_splits(config, data_dir)
    provenance = run_provenance(config, data_dir)
    steps_per_epoch = epoch_steps(len(splits["train"][0]), config.batch_size)
    _check_steps_per_execution(steps_per_execution, steps_per_epoch)
    options = dict(resume=resume, progress=progress, allow_other_backend=allow_other_backend,
                   devices=devices, steps_per_execution=steps_per_execution,
                   engine_options=engine_options, steps_per_epoch=steps_per_epoch,
                   splits=splits, provenance=provenance, data_dir=data_dir)
    if out_dir is None:
        return _run_owned(config, None, **options)
    files = RunFiles(out_dir)
    with runfiles.owned(files):  # one process per run folder
        return _run_owned(config, files, **options)


def _run_owned(config, files, *, resume, progress, allow_other_backend, devices,
               steps_per_execution, engine_options, steps_per_epoch, splits, provenance,
               data_dir):
    """:func:`_run` once the data is loaded and the run folder (if any) is this process's."""
    rows: list[dict] = []
    model, tables, done, resumed_at = None, None, 0, []
    if files is not None:
        if files.config.exists():
            runfiles.check_reuse(files, runfiles.read_config(files), config, provenance,
                                 allow_other_backend)
        files.clean_temporary()
        if not resume:
            files.remove_run()
        else:
            stored = runfiles.stored_result(files, config)
            if stored is not None:
                return stored
        runfiles.atomic_write_text(files.config, json.dumps(
            {"hash": config.hash, "config": config.to_dict(), "provenance": provenance,
             "engine": {"engine": "fit"} if engine_options is None else
             {"engine": "device", **engine_options}},
            indent=1))
        if resume and files.checkpoint.exists():
            model, done, rows = runfiles.resume_point(files, steps_per_epoch, config)
            tables = runfiles.read_init_tables(files)
            resumed_at = runfiles.read_resumes(files)
            if done < config.epochs:
                resumed_at = sorted(set(resumed_at) | {done})
                runfiles.atomic_write_text(files.resumes, json.dumps(resumed_at))
            best = best_so_far(rows)["best_epoch"]
            for e, path in files.best_candidates().items():
                if e > done or e != best:
                    path.unlink(missing_ok=True)  # written after the checkpoint was
                else:
                    _check_best(path, e)
        elif files.history.exists() and files.history.read_bytes().count(b"\n") > 2:
            # A history of several epochs without its checkpoint cannot be
            # continued: keep it beside the new run instead of overwriting it.
            # (One epoch is the crash window before the first checkpoint.)
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
            kept = files.dir / f"history.abandoned-{stamp}.csv"
            os.replace(files.history, kept)
            print(f"[laperm] {files.dir}: no checkpoint to resume from; the old history "
                  f"was kept as {kept.name} and the run starts again.", flush=True)
            files.remove_run()
        else:
            files.remove_run()

    if model is None:
        model, table_frames = build_model(config)
        tables = json.loads(json.dumps({k: v.to_dict("records") for k, v in table_frames.items()},
                                       default=runfiles.json_default))
        if files is not None:
            runfiles.atomic_write_text(files.init_tables,
                               json.dumps(tables, indent=1, default=runfiles.json_default))
        model.compile(
            optimizer=build_optimizer(config),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    remaining = config.epochs - done
    bar = None
    if progress and remaining > 0:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=remaining * steps_per_epoch,
            desc=f"{config.name} [{config.optimizer}] epochs {done + 1}-{config.epochs}",
            unit="step", mininterval=1.0,
        )
    try:
        if engine_options is not None:
            final, adam_recalibrated, counts, test_note, extra = _device_epochs_or_refuse(
                config, model, splits, files, rows, bar, done, engine_options)
        else:
            final, adam_recalibrated, counts, test_note, extra = _fit_epochs(
                config, model, data_dir, splits, files, rows, bar, done, steps_per_epoch,
                steps_per_execution)
    finally:
        if bar is not None:
            bar.close()

    history = pd.DataFrame(rows)
    best = best_so_far(rows)
    laperm = laperm_of(model.optimizer)
    if files is not None and best["best_epoch"] is not None:
        candidate = files.best_candidates().get(best["best_epoch"])
        if candidate is not None:
            _check_best(candidate, best["best_epoch"])
            os.replace(candidate, files.best_weights)
    result = _result_record(
        config, rows, is_reduced=not config.is_paper_scale, counts=counts, test_note=test_note,
        final={"final_val_accuracy": final["val"][1], "final_test_accuracy": final["test"][1],
               "final_test_accuracy_stale_bn": final["test_stale_bn"],
               "final_test_accuracy_unsynced": final["test_unsynced"],
               "final_test_accuracy_recalibrated_bn_adam": adam_recalibrated},
        provenance=provenance, tables=tables, resumed_at=resumed_at,
        extra={"evaluation": evaluation_note(config, model, laperm is not None),
               "devices": devices,
               "steps_per_execution": steps_per_execution,
               **extra,
               "data_order": "epoch e's batches, augmentation and dropout are functions of "
                             "(seed, e)"})
    if files is not None:
        runfiles.atomic_write_text(files.result, json.dumps(result, indent=1, default=runfiles.json_default))
    return history, result


def _check_best(path, epoch: int) -> None:
    """Refuse a damaged best-weights file of ``epoch`` before it is kept or promoted."""
    runfiles.check_weights_file(
        path, f"the best weights of epoch {epoch} are lost: delete this file to go on "
              "without them, or move the folder aside to start the run again")


def _fit_epochs(config, model, data_dir, splits, files, rows, bar, done, steps_per_epoch,
                steps_per_execution):
    """The ``fit`` engine: Keras's trainer over host pipelines, then the final evaluation."""
    import keras

    pipes = prepare_data(config, data_dir, first_epoch=done, splits=splits)
    # An execution detail, not part of the model: set on every start (a loaded
    # checkpoint carries the value it was compiled with).
    model.steps_per_execution = steps_per_execution
    model.train_function = model.test_function = model.predict_function = None
    epoch_end = _EpochEnd(config, model, pipes, files, rows, bar, _wall_time(rows))
    lr_callback = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: learning_rate_at(config.lr_schedule, config.learning_rate, epoch)
    )
    if config.epochs > done:
        callbacks = [lr_callback, epoch_end.callback()]
        if laperm_of(model.optimizer) is not None:
            callbacks.insert(0, NonFiniteGuard())
        model.fit(
            pipes["train"], epochs=config.epochs, initial_epoch=done,
            steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False,
            callbacks=callbacks,
        )
    laperm = laperm_of(model.optimizer)
    final = evaluate_three_ways(config, model, laperm, pipes)
    adam_recalibrated = None
    if laperm is None and config.bn_batches:
        if batchnorm_layers(model):  # what re-estimation alone changes, without a sync
            with recalibrated_batchnorm(model, pipes["bn_images"](), batches=config.bn_batches,
                                        seed=config.seed):
                adam_recalibrated = evaluate(model, pipes["test"])[1]
    counts = {k: pipes[k] for k in ("n_train", "n_val", "n_test")}
    return final, adam_recalibrated, counts, pipes["test_note"], {"engine": "fit"}


def _device_epochs_or_refuse(config, model, splits, files, rows, bar, done, options):
    """:func:`_device_epochs`, with the device running out of memory told in one line
    (:func:`laperm.run.engine.out_of_memory_error`); a run that recorded no epoch leaves
    no record behind."""
    try:
        return _device_epochs(config, model, splits, files, rows, bar, done, options)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if files is not None and not rows:
            files.remove_run()
            files.config.unlink(missing_ok=True)
        raise out_of_memory_error(config.name, len(rows)) from None


def _device_epochs(config, model, splits, files, rows, bar, done, options):
    """The device engine (:mod:`laperm.run.engine`): every epoch on the device, the same records."""
    n_train = int(len(splits["train"][0]))
    trainer = DeviceTrainer(
        config, model, splits, bn_index=(bn_batch_indices(config, n_train)
                                         if config.bn_batches else None),
        epoch_seed_states=epoch_seed_states, **options)
    best = best_so_far(rows)
    t_start, wall_before = time.perf_counter(), _wall_time(rows)
    trips = 0
    for epoch in range(done, config.epochs):
        t_epoch, trips_before = time.perf_counter(), trainer.round_trips
        trainer.set_learning_rate(learning_rate_at(config.lr_schedule, config.learning_rate, epoch))
        trainer.seed_epoch(epoch)
        logs = trainer.train_epoch(epoch, on_steps=bar.update if bar is not None else None)
        scores, judged = trainer.evaluate_three_ways()
        val_acc, test_acc = scores["val"][1], scores["test"][1]
        improved = val_acc > best["best_val_accuracy"]
        if improved and files is not None:  # the judged weights, as the fit path saves them
            tv, ntv, ov = trainer.state
            trainer.write_back((judged[0], judged[1], ov))
            runfiles.atomic_save(model, files.best_of_epoch(epoch + 1), weights_only=True)
        trainer.write_back()
        row = _history_row(
            epoch + 1, scores, loss=logs["loss"], train_accuracy=logs["accuracy"],
            learning_rate=trainer.learning_rate(), sync_count=trainer.sync_count(),
            epoch_time_s=time.perf_counter() - t_epoch,
            wall_time_s=wall_before + time.perf_counter() - t_start)
        rows.append(row)
        if improved:
            best = best_so_far([row])
        _record_epoch(files, rows, model, config, best)
        if bar is not None:
            bar.set_postfix(val_acc=f"{val_acc:.4f}", test_acc=f"{test_acc:.4f}")
        trips = trainer.round_trips - trips_before
    trainer.write_back()
    final, _ = trainer.evaluate_three_ways()
    counts = {"n_train": n_train, "n_val": int(len(splits["val"][0])),
              "n_test": int(len(splits["test"][0]))}
    return (final, trainer.adam_recalibrated_test(), counts, splits["info"].test_note,
            {**trainer.description(), "host_round_trips_per_epoch": trips or None})


def _result_record(config, rows, *, is_reduced, counts, test_note, final, provenance, tables,
                   resumed_at, extra) -> dict[str, Any]:
    """The ``result.json`` of a run: its config, scale, evaluations and provenance.

    One builder for a finished run (:func:`run`) and for the reduced record of a
    run in progress (:func:`snapshot_partial`), so that both carry the same
    fields.  ``final`` holds the last evaluation's numbers, ``extra`` what only
    one of the two knows.
    """
    best = best_so_far(rows)
    tests = [float(r["test_accuracy"]) for r in rows
             if r.get("test_accuracy") == r.get("test_accuracy")]  # not NaN
    return {
        "name": config.name,
        "config": config.to_dict(),
        "config_hash": config.hash,
        "optimizer": config.optimizer,
        "scale": {
            "label": config.scale_label,
            "is_reduced": bool(is_reduced),
            "epochs_run": len(rows),
            "paper_epochs": config.paper_epochs,
            "train_fraction": config.train_fraction,
            **counts,
        },
        "test_set": test_note,
        "evaluated_on_synchronised_weights": config.optimizer == "laperm",
        **final,
        "precision": config.precision,
        "kernels": config.kernels,
        "best_epoch": best["best_epoch"],
        "best_val_accuracy": best["best_val_accuracy"],
        "test_accuracy_at_best_val": best["test_accuracy_at_best"],
        "best_test_accuracy_any_epoch": max(tests) if tests else None,
        "paper_accuracy": PAPER_ACCURACY.get(config.name),
        "wall_time_s": _wall_time(rows),
        "resumed_at_epochs": resumed_at,
        "provenance": provenance,
        "init_tables": tables,
        **extra,
        **environment_info(),
    }


def snapshot_partial(run_dir, dest_root, name_of) -> tuple[str, dict] | None:
    """Record a run in progress as a reduced run of the epochs it has done.

    The history of a paper-scale run that is still training is written as a
    finished *reduced* run, ``<name>_e<epochs done>``, with a result computed
    from the history alone (the best epoch on validation, and the last epoch's
    evaluation as the final one, which is what :func:`run` measures after the
    last epoch).  The run itself is not touched and resumes as before.

    Args:
        run_dir: the folder of the run in progress.
        dest_root: where the reduced record's folder is written.
        name_of: ``name_of(config) -> folder name`` (``laperm.reproduce.run_name``).

    Returns:
        ``(folder name, result)``, or None when the run has no finished epoch
        or is finished already.
    """
    from pathlib import Path

    files = RunFiles(run_dir)
    if files.result.exists() or not files.history.exists() or not files.config.exists():
        return None
    rows = runfiles.read_history(files)
    if not rows:
        return None
    stored = runfiles.read_config(files)
    config = ExperimentConfig.from_dict(stored["config"]).replace(epochs=len(rows))
    last = rows[-1]
    history = pd.DataFrame(rows)
    tables = runfiles.read_init_tables(files)
    resumed = runfiles.read_resumes(files)

    data_info = (stored.get("provenance") or {}).get("data", {})
    n_all, n_test = data_info.get("n_train"), data_info.get("n_test")
    counts, test_note = {}, None
    if n_all is not None:
        n_val = config.validation_size
        counts = {"n_train": int(round((n_all - n_val) * config.train_fraction)),
                  "n_val": n_val, "n_test": n_test}
        full = FULL_TEST_SIZE[config.dataset]
        test_note = (f"{n_test} exact test images (the first {n_test} of the official {full})"
                     if n_test < full else f"the full {config.dataset} test set ({n_test} images)")
    result = _result_record(
        config, rows, is_reduced=True, counts=counts, test_note=test_note,
        final={"final_val_accuracy": float(last["val_accuracy"]),
               "final_test_accuracy": float(last["test_accuracy"]),
               "final_test_accuracy_stale_bn": float(last.get("test_accuracy_stale_bn", np.nan)),
               "final_test_accuracy_unsynced": float(last.get("test_accuracy_unsynced", np.nan))},
        provenance=stored.get("provenance"), tables=tables, resumed_at=resumed,
        extra={"snapshot_of": f"{Path(run_dir).name} (in progress, {len(rows)} of "
                              f"{config.paper_epochs} epochs)",
               **(stored.get("engine") or {"engine": "fit"})})
    name = name_of(config)
    source = f"{Path(run_dir).name} (in progress"
    for old in Path(dest_root).glob("*/result.json"):  # earlier snapshots of the same run
        try:
            earlier = json.loads(old.read_text()).get("snapshot_of", "")
        except ValueError:
            continue
        if earlier.startswith(source) and old.parent.name != name:
            for path in old.parent.iterdir():
                path.unlink()
            old.parent.rmdir()
    dest = Path(dest_root) / name
    dest.mkdir(parents=True, exist_ok=True)
    runfiles.atomic_write_text(dest / "config.json", json.dumps(
        {"hash": config.hash, "config": config.to_dict(), "provenance": stored.get("provenance")},
        indent=1))
    runfiles.atomic_write_text(dest / "history.csv", history.to_csv(index=False))
    runfiles.atomic_write_text(dest / "result.json",
                               json.dumps(result, indent=1, default=runfiles.json_default))
    return name, result
