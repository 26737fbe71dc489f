"""The same training (Sections 4 and 5.5): the authors' ``LaPermTrainLoop`` and
``model.fit`` with :class:`laperm.LaPerm`, from the same theta_0 on the same batches,
compared after each of the first syncs; the authors' architectures in tf-keras and the
loss that matches their loop.
"""


from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from laperm.crosscheck.authors import AuthorsCode, load_authors_code
from laperm.crosscheck.sync import _bits, _rows
from laperm.experiment import build_model, learning_rate_at, load_splits, paper_config, prepare_data
from laperm.method.optimizer import LaPerm

# --------------------------------------------------------------------------
# The authors' architectures in tf-keras, and the matching loss
# --------------------------------------------------------------------------


def authors_model(name: str, code: AuthorsCode | None = None):
    """F1, F2 or Conv7 built with tf-keras, in the authors' notebooks' layer order.

    Args:
        name: ``"f1"``, ``"f2"`` or ``"conv7"`` (Sections 5.1, 5.5).
        code: the loaded authors' code (for its tf-keras).

    Returns:
        A tf-keras ``Sequential`` taking ``(28, 28, 1)`` images; its weights load
        from our model's ``get_weights()`` (same order and shapes).
    """
    k2 = (code or load_authors_code()).keras
    layers = k2.layers
    if name == "f1":
        stack = [layers.Flatten(input_shape=(28, 28, 1)),
                 layers.Dense(10, activation="softmax", use_bias=False)]
    elif name == "f2":
        stack = [layers.Flatten(input_shape=(28, 28, 1)),
                 layers.Dense(128, activation="relu", use_bias=False,
                              kernel_regularizer=k2.regularizers.l2(1e-4)),
                 layers.Dense(64, activation="relu", use_bias=False,
                              kernel_regularizer=k2.regularizers.l2(1e-4)),
                 layers.Dense(10, activation="softmax", use_bias=False)]
    elif name == "conv7":
        init = dict(kernel_initializer="he_uniform", bias_initializer="he_uniform",
                    activation="relu")
        stack = [layers.Conv2D(32, 3, input_shape=(28, 28, 1), **init),
                 layers.Conv2D(32, 3, **init),
                 layers.Conv2D(32, 5, strides=2, padding="same", **init),
                 layers.Dropout(0.4),
                 layers.Conv2D(64, 3, **init),
                 layers.Conv2D(64, 3, **init),
                 layers.Conv2D(64, 5, strides=2, padding="same", **init),
                 layers.Dropout(0.4),
                 layers.Conv2D(128, 4, **init),
                 layers.Flatten(),
                 layers.Dropout(0.4),
                 layers.Dense(10, activation="softmax", kernel_initializer="he_uniform",
                              bias_initializer="he_uniform")]
    else:
        raise ValueError(f"authors_model builds 'f1', 'f2' or 'conv7'; received {name!r}.")
    return k2.Sequential(stack)


def matching_loss(model=None):
    """Our loss made to compute what the authors' training loop differentiates.

    Two facts of ``LaPermTrainLoop`` (Section 4's inner optimizer step):

    * **Scale.**  It differentiates the *per-sample* cross-entropy vector with
      the regularisation penalty added to every sample, i.e. the gradient of
      ``sum_i CE_i + B * penalty`` for a batch of B; Keras minimises
      ``mean_i CE_i + penalty``, B times smaller.  Under Adam a constant factor
      on the loss cancels except against epsilon, whose relative size it
      changes.
    * **Formula.**  Its cross-entropy is a ``tf.function`` of its own, called on
      the model's softmax output: inside it the softmax cannot be seen, so the
      cross-entropy is taken from the clipped probabilities,
      ``-log(clip(p_y, 1e-7, 1 - 1e-7))`` (through TensorFlow's logits
      formula applied to ``log p``), not fused with the softmax from the logits
      as Keras (ours, and theirs outside a nested function) does.  The two agree
      in value to rounding; their gradients differ in the last bits.

    Adam's step is nearly ``lr * sign(g)`` for small gradients, so last-bit
    differences in near-zero gradient entries become differences of a whole
    step, which can reorder near-equal weights and so move positions at a
    sync.  This loss reproduces both facts: the cross-entropy from the
    clipped probabilities, summed over the batch, plus ``(B - 1) / B`` of the
    penalty per sample (Keras adds the penalty once more itself).

    Args:
        model: the Keras 3 model, needed only when it has regularisers.

    Returns:
        A Keras loss with ``reduction="sum"``.
    """
    import keras
    from keras import ops

    class AuthorsLoopLoss(keras.losses.Loss):
        def __init__(self):
            super().__init__(name="authors_loop_crossentropy", reduction="sum")

        def call(self, y_true, y_pred):
            eps = keras.config.epsilon()
            log_p = ops.log(ops.clip(y_pred, eps, 1.0 - eps))
            ce = ops.sparse_categorical_crossentropy(y_true, log_p, from_logits=True)
            if model is not None and model.losses:
                b = ops.cast(ops.shape(ce)[0], ce.dtype)
                ce = ce + (b - 1.0) / b * ops.sum(ops.stack(model.losses))
            return ce

    return AuthorsLoopLoss()


# --------------------------------------------------------------------------
# 2. The same training
# --------------------------------------------------------------------------


class _Enough(Exception):
    """Stops the authors' loop once the steps to compare have run."""


class _FeedFlow:
    """What ``LaPermTrainLoop.fit`` calls ``datagen.flow(...)`` on: our batches, in order.

    Each ``next()`` is called at the start of a step, so the model then holds
    the weights after the previous step (and its sync): they are recorded
    for the steps asked.
    """

    def __init__(self, dataset, model, record_steps=(), last_step=None, digests=None):
        self._batches = iter(dataset)
        self._model = model
        self._record = set(record_steps)
        self._last = last_step
        self.calls = 0
        self.snapshots: dict[int, list[np.ndarray]] = {}
        self.digests = digests

    def flow(self, **_ignored):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        done = self.calls
        if done in self._record:
            self.snapshots[done] = [v.numpy().copy() for v in self._model.trainable_variables]
        if self._last is not None and done >= self._last:
            raise _Enough()
        self.calls += 1
        x, y = next(self._batches)
        x, y = np.asarray(x), np.asarray(y)
        if self.digests is not None:
            self.digests.append(_digest(x, y))
        return x, y


def _digest(x, y) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


class _Length:
    """Stands in for the training images in ``LaPermTrainLoop.fit``: only ``len`` is used."""

    def __init__(self, n):
        self._n = int(n)

    def __len__(self):
        return self._n


def _our_snapshot_callback(record_steps, last_step):
    import keras

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
            self.snapshots = {}

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step in record_steps:
                self.snapshots[self.step] = [
                    np.asarray(keras.ops.convert_to_numpy(v.value)).copy()
                    for v in self.model.trainable_variables]
            if self.step >= last_step:
                self.model.stop_training = True

    return Snapshots()


def _chance_agreement(theta0: Sequence[np.ndarray], permuted_mask: Sequence[bool]) -> float:
    """Positions two independent random permutations (within vectors) share, expected."""
    expected, total = 0.0, 0
    for t, permuted in zip(theta0, permuted_mask):
        rows = _rows(t)
        total += rows.size
        if not permuted:
            expected += rows.size
            continue
        for row in rows:
            _, counts = np.unique(_bits(row), return_counts=True)
            expected += float((counts.astype(np.float64) ** 2).sum() / row.size)
    return expected / total if total else float("nan")


def _is_permutation(weights, theta0) -> bool:
    return all(np.array_equal(np.sort(_rows(w), 1), np.sort(_rows(t), 1))
               for w, t in zip(weights, theta0))


@dataclasses.dataclass
class TrainingComparison:
    """Weights of the authors' loop and ours after the same steps.

    Attributes:
        model: ``"f1"`` or ``"conv7"`` (or ``"f2"``).
        settings: k, batch size, learning-rate schedule, loss, dropout, seed ...
        same_batches: both sides trained on batches with identical bytes.
        table: one row per compared step: ``step, sync`` (the number of syncs
            done, or None between syncs), ``positions, agree, agree_fraction,
            chance_fraction`` (what two unrelated permutations of theta_0 would
            share), ``max_abs_diff``, ``ours_permutation, authors_permutation``
            (each side's weights are a permutation of theta_0 within vectors).
    """

    model: str
    settings: dict
    same_batches: bool
    table: pd.DataFrame

    def to_dict(self) -> dict:
        return {"model": self.model, "settings": self.settings,
                "same_batches": self.same_batches,
                "table": json.loads(self.table.to_json(orient="records"))}


def compare_training(model: str = "f1", *, syncs: int = 3, sync_period: int | None = None,
                     matching: bool = False, dropout: bool = True, seed: int = 0,
                     train_fraction: float = 1.0, data_dir=None,
                     code: AuthorsCode | None = None) -> TrainingComparison:
    """Train with their ``LaPermTrainLoop`` and with ``model.fit`` + LaPerm, side by side.

    Both start from the same theta_0 (our :func:`laperm.experiment.build_model`
    of the paper's config, copied into the tf-keras model), see the same batches
    in the same order (our pipeline, :func:`laperm.experiment.prepare_data`,
    iterated once per side and checked byte for byte), use Adam with the same
    k and learning-rate schedule, and permute the same variables.  The weights
    are compared after the first step, just before the first sync, and after
    each of the first ``syncs`` syncs (Section 4).

    Args:
        model: ``"f1"`` (Section 5.5; k = 250) or ``"conv7"`` (Section 5.1; the
            notebook's k = 20), or ``"f2"``.
        syncs: number of syncs to compare.
        sync_period: k (default: the paper's config: 250 for F1, 20 for Conv7).
        matching: train ours with :func:`matching_loss` (the authors' scale of
            the loss) instead of Keras's mean cross-entropy.
        dropout: keep the dropout layers (Conv7); each side then draws its own
            masks from its own random generator, so the weights part at once.
        seed: the config's seed (theta_0, data order, augmentation).
        train_fraction: share of the training set in the pipeline (smaller
            epochs make the learning-rate schedule change sooner).
        data_dir: folder with ``mnist.npz``.
        code: the loaded authors' code.

    Returns:
        A :class:`TrainingComparison`.
    """
    import keras

    code = code or load_authors_code()
    base = {"f1": "f1", "f2": "f2", "conv7": "conv7_k20"}.get(model)
    if base is None:
        raise ValueError(f"compare_training takes 'f1', 'f2' or 'conv7'; received {model!r}.")
    probe = paper_config(base, seed=seed, train_fraction=train_fraction, bn_batches=0)
    k = int(sync_period or probe.sync_period)
    total = syncs * k
    splits = load_splits(probe, data_dir)
    pipes = prepare_data(probe.replace(epochs=1), data_dir, splits=splits)
    steps_per_epoch = pipes["steps_per_epoch"]
    epochs = max(1, math.ceil(total / steps_per_epoch))
    config = probe.replace(sync_period=k, epochs=epochs)

    def batches():
        return prepare_data(config, data_dir, splits=splits)["train"]

    ours_model, _ = build_model(config)
    theirs_model = authors_model(model, code)
    theirs_model.set_weights(ours_model.get_weights())
    if not dropout:
        for layer in ours_model.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        for layer in theirs_model.layers:
            if isinstance(layer, code.keras.layers.Dropout):
                layer.rate = 0.0
    theta0 = [np.asarray(w).copy() for w in ours_model.get_weights()]
    record = sorted({1, max(1, k - 1)} | {j * k for j in range(1, syncs + 1)})

    def lr(epoch):
        return learning_rate_at(config.lr_schedule, config.learning_rate, epoch)

    # Theirs.
    keras.utils.set_random_seed(seed)
    code.keras.utils.set_random_seed(seed)
    their_digests: list[str] = []
    feed = _FeedFlow(batches(), theirs_model, record, total,
                     their_digests)
    loop = code.LaPerm.LaPermTrainLoop(
        model=theirs_model, loss="sparse_categorical_crossentropy",
        inner_optimizer=code.keras.optimizers.Adam(config.learning_rate),
        k_schedule=lambda epoch: k, lr_schedule=lr,
        skip_bn=config.skip_bn, skip_bias=config.skip_bias)
    try:
        loop.fit(_Length(pipes["n_train"]), None, batch_size=config.batch_size, epochs=epochs,
                 datagen=feed, validation_data=(None, None), validation_freq=None)
    except _Enough:
        pass
    else:  # the loop ran out of epochs exactly at the last step: no next() call after it
        feed.snapshots.setdefault(feed.calls, [v.numpy().copy()
                                               for v in theirs_model.trainable_variables])
    theirs = feed.snapshots

    # Ours.
    keras.utils.set_random_seed(seed)
    optimizer = LaPerm(keras.optimizers.Adam(config.learning_rate), sync_period=k,
                       skip_bias=config.skip_bias, skip_bn=config.skip_bn)
    ours_model.compile(optimizer=optimizer,
                       loss=matching_loss(ours_model) if matching
                       else "sparse_categorical_crossentropy")
    snapshots = _our_snapshot_callback(set(record), total)
    train = batches()
    ours_model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
                   shuffle=False, callbacks=[
                       keras.callbacks.LearningRateScheduler(lambda e, _: lr(e)), snapshots])
    ours = snapshots.snapshots
    our_digests = [_digest(np.asarray(x), np.asarray(y))
                   for x, y in batches().take(total)]
    mask = list(optimizer._permuted_mask)

    chance = _chance_agreement(theta0, mask)
    rows = []
    for step in record:
        a, b = ours.get(step), theirs.get(step)
        if a is None or b is None:
            continue
        agree = sum(int(np.count_nonzero(_bits(x) == _bits(y))) for x, y in zip(a, b))
        positions = sum(int(x.size) for x in a)
        synced = step % k == 0
        rows.append({
            "step": step, "sync": step // k if synced else None, "positions": positions,
            "agree": agree, "agree_fraction": agree / positions,
            "chance_fraction": chance if synced else None,
            "max_abs_diff": float(max(np.max(np.abs(x - y)) for x, y in zip(a, b))),
            "ours_permutation": _is_permutation(
                [w for w, m in zip(a, mask) if m], [t for t, m in zip(theta0, mask) if m]),
            "authors_permutation": _is_permutation(
                [w for w, m in zip(b, mask) if m], [t for t, m in zip(theta0, mask) if m]),
        })
    settings = {
        "sync_period": k, "syncs": syncs, "steps": total, "batch_size": config.batch_size,
        "steps_per_epoch": steps_per_epoch, "n_train": pipes["n_train"],
        "train_fraction": train_fraction, "lr_schedule": config.lr_schedule,
        "learning_rate": config.learning_rate, "seed": seed,
        "loss": ("ours: summed cross-entropy (+ B x penalty), the authors' scale" if matching
                 else "ours: mean cross-entropy (+ penalty), Keras's default; theirs: summed"),
        "matching_loss": bool(matching), "dropout": bool(dropout),
        "permuted_variables": int(sum(mask)), "variables": len(mask),
        "initial_weights": _init_note(config),
    }
    return TrainingComparison(model, settings, their_digests == our_digests, pd.DataFrame(rows))


def _init_note(config) -> str:
    if config.shared_value is not None:
        return f"shared value {config.shared_value}, keep {config.shared_keep} (Bernoulli mask)"
    return "He-uniform kernels and biases"
