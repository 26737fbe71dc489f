"""Section 2's measurements: weight-profile scores next to θ0 and a shuffled null.

Qiu & Suda (2020), Section 2, observe that the sorted weight vectors of a
trained layer lie on one curve, the layer's *weight profile*.  The book's page
2 measures that with :func:`laperm.analysis.profiles.layer_profile_table` on
networks trained here with Adam (:func:`train_with_adam`), on the authors'
published LaPerm checkpoints (:func:`he_uniform_check`, :func:`kernels`,
:func:`showcase`, :func:`table_by_shape`) and on ImageNet's VGG16
(:func:`vgg16_dense_kernels`).  This module turns those tables into what the
page shows (:func:`score_table`, :func:`short_name`) and concludes
(:func:`score_finding`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from laperm import data, models
from laperm.paper import model_label
from laperm.analysis import profiles

#: The authors' repository, where their checkpoints are published (folder ``pretrained``).
CHECKPOINTS_URL = "https://github.com/ihsuy/Train-by-Reconnect"

#: The score columns in the order a page shows them (``{b}``: the baseline's label).
SCORE_COLUMNS = ("name", "shape", "std_{b}", "std",
                 "correlation_{b}", "correlation", "correlation_shuffled",
                 "rms_similarity_{b}", "rms_similarity", "rms_similarity_shuffled")

#: The columns of :func:`table_by_shape`, in their order.
BY_SHAPE_COLUMNS = ["kernels", "std",
                    "correlation_fresh_init", "correlation", "correlation_shuffled",
                    "rms_similarity_fresh_init", "rms_similarity", "rms_similarity_shuffled",
                    "max|w| / limit", "std / (limit/sqrt3)"]

#: Evaluation batch size where Keras's default is too small for speed.
_EVAL_BATCH = {"conv7": 500}


def short_name(column: str) -> str:
    """Column names that fit the page: corr / rms, and θ0 for the initialisation.

    ``"rms_similarity_fresh_init"`` becomes ``"rms θ0"``, ``"correlation_shuffled"``
    ``"corr null"``.
    """
    for long, short in (("rms_similarity", "rms"), ("correlation", "corr"),
                        ("_fresh_init", " θ0"), ("_glorot_init", " θ0"), ("_init", " θ0"),
                        ("_shuffled", " null")):
        column = column.replace(long, short)
    return column


def score_table(table: pd.DataFrame, base_label: str = "init", baseline=None) -> pd.DataFrame:
    """A :func:`~laperm.analysis.profiles.layer_profile_table` as the page shows it.

    Each score at the baseline, here and for the shuffled null, side by side,
    with short column names (:func:`short_name`).

    Args:
        table: the layer table (with baseline and shuffled columns).
        base_label: the table's ``baseline_label``.
        baseline: the baseline's weights (model, mapping or list); when given,
            the spread of each of its kernels is added as ``std_<base_label>``,
            in the table's order.
    """
    table = table.copy()
    if baseline is not None:
        table[f"std_{base_label}"] = [w.std() for _, w in profiles.named_weights(baseline)
                                      if w.ndim >= 2]
    cols = [c.format(b=base_label) for c in SCORE_COLUMNS]
    out = table[[c for c in cols if c in table.columns]].copy()
    return out.rename(columns=short_name)


def score_finding(table: pd.DataFrame, base_label: str, what: str) -> str:
    """One sentence computed from a layer table: the rms score against θ0 and the null.

    It gives the lowest correlation score of the table (trained, baseline and
    shuffled alike) and in how many layers the rms similarity is below the
    baseline's and below the shuffled null's.

    Args:
        table: a :func:`~laperm.analysis.profiles.layer_profile_table` with
            baseline and shuffled columns.
        base_label: its ``baseline_label``.
        what: the weights measured, e.g. ``"F2 trained with Adam"``.
    """
    n = len(table)
    below0 = int((table["rms_similarity"] < table[f"rms_similarity_{base_label}"]).sum())
    below_null = int((table["rms_similarity"] < table["rms_similarity_shuffled"]).sum())
    corr_min = table[["correlation", f"correlation_{base_label}",
                      "correlation_shuffled"]].min().min()
    return (f"**{what}:** every correlation score in the table, including those of the "
            f"initialisation and of the shuffled null, is at least {corr_min:.3f}. "
            f"The rms similarity is lower than at initialisation in {below0} of {n} layers "
            f"and lower than the shuffled null in {below_null} of {n}.")


@dataclass
class AdamRun:
    """A model trained with Adam from a kept θ0 (:func:`train_with_adam`).

    Attributes:
        model: the trained Keras model.
        theta0: its initial weights (``get_weights()`` before training).
        accuracy: test accuracy after training.
        n_train: training images used.
        seconds: wall time of training and evaluation.
        scale: one line saying what was run (for ``sec.note_scale``).
        n_test: test images.
    """

    model: keras.Model
    theta0: list
    accuracy: float
    n_train: int
    seconds: float
    scale: str
    n_test: int

    @property
    def summary(self) -> str:
        """One line: the scale, the test accuracy and the wall time."""
        return (f"{self.scale}: test accuracy {self.accuracy:.2%} on {self.n_test:,} images, "
                f"{self.seconds:.0f} s")


def train_with_adam(name: str, mnist, epochs: int, n_train: int, batch_size: int,
                    seed: int = 0) -> AdamRun:
    """Train one of the paper's MNIST models with plain Adam (learning rate 1e-3).

    Ordinary training, not LaPerm: the page compares the profiles of the
    trained weights with those of θ0 (Section 2).  Pixels are scaled to
    [0, 1]; a convolutional model gets a channel axis.

    Args:
        name: ``"f2"`` or ``"conv7"`` (a function of :mod:`laperm.models`).
        mnist: ``((x_train, y_train), (x_test, y_test))`` of :func:`laperm.data.load`.
        epochs: epochs of Adam.
        n_train: training images (a stratified seeded subset when fewer than all).
        batch_size: the batch size.
        seed: seeds the initialisation, the subset and the shuffling.
    """
    (x_train, y_train), (x_test, y_test) = mnist
    if n_train < len(x_train):
        x_train, y_train = data.subset(x_train, y_train, n_train, seed=seed)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = getattr(models, name)()
    theta0 = model.get_weights()
    if len(model.input_shape) == 4:  # a convolutional model: add the channel axis
        x_train, x_test = x_train[..., None], x_test[..., None]
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train / 255.0, y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    accuracy = model.evaluate(x_test / 255.0, y_test, batch_size=_EVAL_BATCH.get(name),
                              verbose=0)[1]
    scale = (f"{model_label(name)} + Adam, {epochs} epoch(s) on {len(x_train):,} MNIST training "
             f"images{', no augmentation' if name != 'f2' else ''} (reduced)")
    return AdamRun(model, theta0, accuracy, len(x_train), time.perf_counter() - start, scale,
                   len(x_test))


def he_uniform_check(model) -> pd.DataFrame:
    """``max|w| / limit`` and ``std / (limit/√3)`` of every kernel, ``limit = √(6/fan_in)``.

    For a He-uniform draw (and any permutation of one, such as a network
    trained by LaPerm) the first is at most 1 and the second about 1.
    """
    rows = []
    for name, w in profiles.named_weights(model):
        if w.ndim < 2:
            continue
        limit = np.sqrt(6.0 / np.prod(w.shape[:-1]))
        rows.append({"name": name, "max|w| / limit": np.abs(w).max() / limit,
                     "std / (limit/sqrt3)": w.std() / (limit / np.sqrt(3.0))})
    return pd.DataFrame(rows)


def he_uniform_finding(shown: pd.DataFrame, what: str = "The authors' checkpoint") -> str:
    """One sentence on :func:`he_uniform_check`'s columns of a score table.

    Says the largest ``max|w| / limit`` over the kernels (at most 1 for a
    He-uniform draw or any permutation of one) and the range of
    ``std / (limit/√3)`` (about 1 expected).
    """
    top = float(shown["max|w| / limit"].max())
    low, high = (float(shown["std / (limit/sqrt3)"].min()),
                 float(shown["std / (limit/sqrt3)"].max()))
    beyond = int((shown["max|w| / limit"] > 1 + 1e-6).sum())
    return (f"**{what}, He-uniform check:** "
            + (f"no kernel holds a value beyond its limit √(6/fan_in) (largest |w| / limit "
               f"{top:.3f})" if beyond == 0 else
               f"{beyond} of {len(shown)} kernels hold values beyond their limit √(6/fan_in) "
               f"(largest |w| / limit {top:.3f})")
            + f"; std / (limit/√3) ranges over [{low:.2f}, {high:.2f}] across "
              f"{len(shown)} kernels (1 for a uniform draw).")


def missing_checkpoints_note() -> str:
    """What a page says when the authors' checkpoints are not found, and where to get them."""
    return ("**The authors' checkpoints were not found** (looked at the `reference_dir` "
            "parameter, `$LAPERM_REFERENCE_DIR` and `../shared/reference/pretrained`). "
            f"Download `Conv7.h5` and `resnet50.h5` from the authors' repository "
            f"{CHECKPOINTS_URL} (folder `pretrained`), put them in a folder and set "
            "`LAPERM_REFERENCE_DIR` to it. Part (b) is skipped.")


def kernels(model) -> dict[str, np.ndarray]:
    """A model's kernels (variables of 2 or more dimensions), by name, in order."""
    return dict((n, w) for n, w in profiles.named_weights(model) if w.ndim >= 2)


def showcase(trained, fresh) -> tuple[dict, dict]:
    """Six kernels of a CIFAR-10 ResNet to draw, and their fresh baselines.

    The stem, the first kernel of the first stage, the first 3x3 kernel of
    32 and of 64 channels, the first 1x1 shortcut projection (16 to 32) and
    the classifier.

    Args:
        trained: the trained ResNet (a model, or anything :func:`kernels` reads).
        fresh: a fresh initialisation of it, matched by position.

    Returns:
        ``({name: kernel}, {name: fresh kernel})``, named by the trained kernels.
    """
    trained = kernels(trained)
    fresh = list(kernels(fresh).values())
    names = list(trained)
    shapes = [w.shape for w in trained.values()]
    picks = [0, 1, shapes.index((3, 3, 32, 32)), shapes.index((1, 1, 16, 32)),
             shapes.index((3, 3, 64, 64)), len(names) - 1]
    chosen = {names[i]: trained[names[i]] for i in picks}
    chosen_fresh = {names[i]: fresh[i] for i in picks}
    return chosen, chosen_fresh


def table_by_shape(table: pd.DataFrame, weights) -> pd.DataFrame:
    """Scores averaged over kernels of the same shape, with their count (page 2's ResNet50).

    Args:
        table: a layer table with ``fresh_init`` and shuffled columns.
        weights: the weights it scores; :func:`he_uniform_check`'s columns
            are added.

    Returns:
        One row per ``(shape, vector_length)``, in the order they first occur,
        columns :data:`BY_SHAPE_COLUMNS` with short names (:func:`short_name`).
    """
    table = table.merge(he_uniform_check(weights), on="name")
    table = table.assign(shape=table["shape"].astype(str))
    groups = table.drop(columns=["name"]).groupby(["shape", "vector_length"], sort=False)
    by_shape = groups.mean(numeric_only=True)
    by_shape.insert(0, "kernels", groups.size())
    return by_shape[BY_SHAPE_COLUMNS].rename(columns=short_name)


def vgg16_dense_kernels(n_vectors: int | None = None, seed: int = 0):
    """VGG16's Dense kernels (ImageNet weights) and Glorot-uniform baselines.

    The weights (about 530 MB) are downloaded by ``keras.applications`` on first
    use.

    Args:
        n_vectors: keep this many randomly chosen output units per layer (None: all).
        seed: seeds the choice of units and the baselines.

    Returns:
        ``({name: kernel}, {name: baseline})`` for ``fc1``, ``fc2`` and
        ``predictions``, or ``(None, note)`` when the weights cannot be loaded,
        where ``note`` says why (Markdown).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vgg = keras.applications.VGG16(weights="imagenet")
    except Exception as exc:  # noqa: BLE001 - no network, proxy, disk full, ...
        return None, (
            "**Could not load the ImageNet weights of VGG16** "
            f"(`{type(exc).__name__}: {str(exc)[:160]}`). They are downloaded from "
            "the Keras storage on first use (about 530 MB, into `~/.keras/models`); "
            "run this section on a machine with internet access. Part (c) is skipped.")
    rng = np.random.default_rng(seed)
    trained, baseline = {}, {}
    for name in ("fc1", "fc2", "predictions"):
        w = vgg.get_layer(name).kernel.numpy()
        if n_vectors is not None and n_vectors < w.shape[1]:
            w = w[:, np.sort(rng.choice(w.shape[1], n_vectors, replace=False))]
        fan_in, fan_out = vgg.get_layer(name).kernel.shape
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        trained[name] = w
        baseline[name] = rng.uniform(-limit, limit, size=w.shape).astype(np.float32)
    del vgg
    return trained, baseline


@dataclass
class Scores:
    """The profile scores of some weights next to a baseline and the null (:func:`measure`).

    Attributes:
        table: :func:`~laperm.analysis.profiles.layer_profile_table` with the
            baseline and shuffled columns.
        shown: the table as a page shows it (:func:`score_table`; with
            :func:`he_uniform_check`'s columns when asked).
        finding: :func:`score_finding`'s sentence.
    """

    table: pd.DataFrame
    shown: pd.DataFrame
    finding: str


def measure(weights, baseline, what: str, base_label: str = "init",
            he_uniform: bool = False) -> Scores:
    """Score every kernel of ``weights`` at ``baseline``, here and for the shuffled null.

    Args:
        weights: a Keras model, a ``{name: array}`` mapping or a list of arrays.
        baseline: weights of the same structure (θ0, or a fresh draw of it).
        what: names the weights in the finding, e.g. ``"F2 trained with Adam"``.
        base_label: the baseline's label in the column names (``"init"``,
            ``"fresh_init"``, ``"glorot_init"``).
        he_uniform: add :func:`he_uniform_check`'s two columns to ``shown``.
    """
    table = profiles.layer_profile_table(weights, baseline=baseline, baseline_label=base_label,
                                         shuffled=True)
    shown = score_table(table, base_label, baseline)
    if he_uniform:
        shown = shown.merge(he_uniform_check(weights), on="name")
    return Scores(table, shown, score_finding(table, base_label, what))


def load_with_fresh(build, path, seed: int):
    """A model with published weights, and a fresh initialisation of it as the baseline.

    Args:
        build: makes the model (e.g. :func:`laperm.models.conv7`).
        path: the weights file (Keras ``.h5``).
        seed: seeds the fresh initialisation.

    Returns:
        ``(loaded, fresh)``.
    """
    keras.backend.clear_session()
    loaded = build()
    loaded.load_weights(path)
    keras.utils.set_random_seed(seed)
    return loaded, build()
