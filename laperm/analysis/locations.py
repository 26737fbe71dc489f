"""Locations versus values (Section 3): re-permute theta_0 into the order of theta_t.

Train a network with plain Adam; at checkpoints, build
``repermute(theta_0, theta_t)`` (theta_0's values of each weight vector,
placed in the rank order of theta_t, as one LaPerm sync would) and measure
the test accuracy of both networks, with how far theta_t moved from theta_0
in order and in value::

    from laperm.analysis import locations
    result = locations.run("f2", epochs=1, train_images=10000, batch_size=128,
                           test_images=2000, n_checkpoints=8)
    result.curve          # one row per checkpoint
    result.random_acc     # a random permutation of theta_0 (a null model)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from laperm import data, models
from laperm.paper import model_label
from laperm.analysis import profiles
from laperm.analysis.verdict import binomial_se


def random_repermutation(weights, seed):
    """A random permutation within every weight vector of every kernel (a null model)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in weights:
        if w.ndim < 2:
            out.append(w)
            continue
        rows = profiles.weight_vectors(w)
        order = np.tile(np.arange(rows.shape[1]), (rows.shape[0], 1))
        idx = rng.permuted(order, axis=1)
        shuffled = np.take_along_axis(rows, idx, axis=1)
        out.append(profiles.from_vectors(shuffled, w.shape))
    return out


def rank_correlation(kernels0, kernels_t) -> float:
    """Mean Spearman correlation between the vectors of theta_t and of theta_0.

    1: theta_t keeps theta_0's order within every vector; about 0: unrelated order.
    """
    out = []
    for a, b in zip(kernels0, kernels_t):
        r0 = profiles.ranks(a).astype(np.float64)
        rt = profiles.ranks(b).astype(np.float64)
        r0 -= r0.mean(axis=1, keepdims=True)
        rt -= rt.mean(axis=1, keepdims=True)
        norm = np.sqrt((r0 ** 2).sum(axis=1) * (rt ** 2).sum(axis=1))
        out.append((r0 * rt).sum(axis=1) / norm)
    return float(np.concatenate(out).mean())


def relative_change(kernels0, kernels_t) -> float:
    """||theta_t - theta_0|| / ||theta_0|| over the kernels."""
    diff = sum(np.sum((b - a) ** 2) for a, b in zip(kernels0, kernels_t))
    return float(np.sqrt(diff / sum(np.sum(a ** 2) for a in kernels0)))


class Repermutation(keras.callbacks.Callback):
    """At chosen steps: accuracy of theta_t and of theta_0 re-permuted by its ranks.

    Evaluates on a separate ``probe`` model, so training is not disturbed.
    Rows (``self.rows``): step, epoch, theta_t, repermuted theta_0 (kernels
    only, LaPerm's default), rank correlation with theta_0, relative value
    change, and for a model with 1-D variables (biases) "repermuted theta_0
    (biases too)".
    """

    def __init__(self, theta0, probe, x, y, at_steps, steps_per_epoch):
        super().__init__()
        self.theta0, self.probe, self.x, self.y = theta0, probe, x, y
        self.at_steps = set(int(s) for s in at_steps)
        self.steps_per_epoch = steps_per_epoch
        self.has_1d = any(w.ndim < 2 for w in theta0)
        self.rows = []

    def accuracy(self, weights) -> float:
        self.probe.set_weights(weights)
        p = self.probe.predict(self.x, batch_size=1000, verbose=0)
        return float(np.mean(np.argmax(p, axis=1) == self.y))

    def measure(self, step: int) -> None:
        theta_t = self.model.get_weights()
        reperm = profiles.repermute_model(self.theta0, theta_t)      # kernels only
        k0 = [w for w in self.theta0 if w.ndim >= 2]
        kt = [w for w in theta_t if w.ndim >= 2]
        row = {
            "step": step,
            "epoch": step / self.steps_per_epoch,
            "theta_t": self.accuracy(theta_t),
            "repermuted theta_0": self.accuracy(reperm),
            "rank correlation with theta_0": rank_correlation(k0, kt),
            "relative value change": relative_change(k0, kt),
        }
        if self.has_1d:                     # also re-permute biases (1-D variables)
            everything = profiles.repermute_model(self.theta0, theta_t,
                                                  predicate=lambda w: True)
            row["repermuted theta_0 (biases too)"] = self.accuracy(everything)
        self.rows.append(row)

    def on_train_begin(self, logs=None):
        self.measure(0)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step in self.at_steps:
            self.measure(step)


@dataclass
class Result:
    """What :func:`run` measured.

    Attributes:
        curve: one row per checkpoint (see :class:`Repermutation`).
        random_acc: the accuracy of a random permutation of theta_0.
        scale: the run's scale, in words.
        n_test: the number of test images measured on.
    """

    curve: pd.DataFrame
    random_acc: float
    scale: str
    n_test: int


def run(model_name: str, epochs: int, train_images: int, batch_size: int, *,
        test_images: int, n_checkpoints: int, learning_rate: float = 1e-3, seed: int = 0,
        data_dir=None) -> Result:
    """Train ``model_name`` (``"f2"`` or ``"conv7"``) on MNIST with Adam and measure
    the re-permuted theta_0 at ``n_checkpoints`` steps spaced geometrically."""
    (x, y), (x_test, y_test) = data.load("mnist", data_dir)
    if train_images < len(x):
        x, y = data.subset(x, y, train_images, seed=seed)
    x_test, y_test = x_test[:test_images], y_test[:test_images]
    if model_name == "conv7":            # Conv7 wants a channel axis
        x, x_test = x[..., None], x_test[..., None]
    x, x_test = x / 255.0, x_test / 255.0
    keras.utils.set_random_seed(seed)
    model = models.get(model_name)       # He-uniform initialisation
    probe = models.get(model_name)       # a copy, only to evaluate other weights
    theta0 = model.get_weights()
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    total = steps_per_epoch * epochs
    at_steps = np.geomspace(1, total, n_checkpoints).round().astype(int)
    callback = Repermutation(theta0, probe, x_test, y_test, at_steps, steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[callback], verbose=0)
    random_acc = callback.accuracy(random_repermutation(theta0, seed))
    scale = (f"{model_label(model_name)} + Adam (lr {learning_rate:g}, batch "
             f"{batch_size}), {epochs} epoch(s) on {len(x):,} MNIST training images = "
             f"{total:,} steps; accuracy on the first {len(x_test):,} test images (reduced)")
    return Result(pd.DataFrame(callback.rows), random_acc, scale, len(x_test))


#: The columns of :func:`summary_table` that are test accuracies (shown as percentages).
ACCURACY_COLUMNS = ("θ0", "random permutation of θ0", "θt (Adam)", "re-permuted θ0",
                    "re-permuted θ0 (biases too)")


def summary_table(runs: dict[str, Result]) -> pd.DataFrame:
    """One row per model: accuracies at step 0, at the end and at the re-permuted network's best.

    Columns: steps, θ0, a random permutation of θ0, θt (Adam) and re-permuted
    θ0 at the last checkpoint (and with biases re-permuted too, where
    measured), the re-permuted network's best accuracy and its step, and how
    far θt moved from θ0 in order and in value at the end.

    Args:
        runs: ``{model name: run(...)}``.
    """
    rows = []
    for name, r in runs.items():
        curve, final = r.curve, r.curve.iloc[-1]
        best = curve.loc[curve["repermuted theta_0"].idxmax()]
        row = {"model": model_label(name), "steps": int(final["step"]),
               "θ0": curve.iloc[0]["theta_t"],
               "random permutation of θ0": r.random_acc,
               "θt (Adam)": final["theta_t"],
               "re-permuted θ0": final["repermuted theta_0"]}
        if "repermuted theta_0 (biases too)" in curve:
            row["re-permuted θ0 (biases too)"] = final["repermuted theta_0 (biases too)"]
        row["best repermuted (step)"] = (f"{best['repermuted theta_0']:.2%} "
                                         f"({int(best['step'])})")
        row["rank correlation with θ0"] = final["rank correlation with theta_0"]
        row["relative value change"] = final["relative value change"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def run_note(name: str, r: Result) -> str:
    """What one model's run shows, in words (Section 3).

    How far the re-permuted network ends below (or above) θt, beside the
    standard error of each accuracy (binomial, ``r.n_test`` images); its best
    point, and whether that peak lies before the end of training by more than
    twice the standard error of the difference (√2 times one accuracy's).
    """
    curve, final = r.curve, r.curve.iloc[-1]
    best = curve.loc[curve["repermuted theta_0"].idxmax()]
    n_test = r.n_test
    se = binomial_se(final["theta_t"], n_test)
    gap = final["theta_t"] - final["repermuted theta_0"]
    note = (
        f"**{model_label(name)}:** at the last checkpoint the re-permuted network is "
        f"{100 * abs(gap):.2f} points {'below' if gap >= 0 else 'above'} theta_t "
        f"(standard error of each accuracy about {100 * se:.2f} points on {n_test:,} test "
        f"images). Its best point was {best['repermuted theta_0']:.2%} at step "
        f"{int(best['step'])}, when θt had {best['theta_t']:.2%} and the kernel "
        f"values had moved by {best['relative value change']:.0%} of θ0's norm "
        f"(at the end: {final['relative value change']:.0%}).")
    drop = best["repermuted theta_0"] - final["repermuted theta_0"]
    se_drop = np.sqrt(2) * binomial_se(final["repermuted theta_0"], n_test)
    if best["step"] < final["step"] and drop > 2 * se_drop:
        note += (f" It peaked **before** the end of training, {100 * drop:.2f} points above "
                 f"its last value (more than twice the {100 * se_drop:.2f}-point standard "
                 "error of that difference): re-permuting later, after the values had "
                 "drifted further, kept less of Adam's accuracy in this run.")
    elif best["step"] < final["step"]:
        note += (f" Its best point is {100 * drop:.2f} points above its last, within twice "
                 f"the {100 * se_drop:.2f}-point standard error of that difference.")
    return note
