"""LaPerm in Keras, PyTorch and JAX side by side: the book's page 4.2.

The sync of Section 4 of Qiu & Suda (2020) exists three times in the package:
:class:`laperm.LaPerm` (Keras), :class:`laperm.torch.LaPerm` and
:func:`laperm.optax.laperm`.  The page checks that they give the same values from the
same weights and trains one small network with each of the last two.  This module holds
what needs neither torch nor JAX:

* which frameworks are installed (:func:`installed`, :func:`show_missing`, :data:`MISSING`);
* the sync test case and its tables (:func:`tied_kernel`, :func:`keras_synced`,
  :func:`sync_table`, :func:`tie_count`, :func:`ties_sentence`);
* the network both frameworks train, its data, θ0 and batches (:class:`MLPSetup`), what a
  training returns (:class:`TrainedRun`), and the tables and sentences about it
  (:func:`show_epochs`, :func:`final_sync_table`, :func:`findings`).

The trainings themselves are :func:`laperm.book.frameworks_torch.train` and
:func:`laperm.book.frameworks_optax.train`, in modules of their own because they import
torch or JAX.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
from keras import ops

from laperm import data
from laperm.analysis.profiles import is_permutation_of
from laperm.book.inputs import note_skipped
from laperm.book.page import show_table
from laperm.method.optimizer import LaPerm

#: The frameworks the page uses besides Keras, and what to do when one is missing.
MISSING = {"torch": 'PyTorch is not installed here: pip install "laperm[pytorch]" (with a CPU '
                    "build of torch) and re-run this page for its PyTorch part.",
           "optax": 'optax is not installed here: pip install "laperm[optax]" and re-run this '
                    "page for its JAX part."}
#: The part of the page each framework runs (what the Status page lists as skipped without it).
PARTS = {"torch": "PyTorch training (torch not installed)",
         "optax": "JAX training (optax not installed)"}
#: The columns of a training's table (:meth:`TrainedRun.table`), in words.
EPOCH_COLUMNS = {"test_acc_synced": "test acc, synchronised",
                 "test_acc_inner": "test acc, inner weights",
                 "permutation_of_theta0": "permutation of θ0"}
#: The name of the Keras implementation in :func:`sync_table`: every other is compared to it.
KERAS = "laperm.LaPerm (Keras)"
#: The layer sizes of the network both frameworks train (F2's shape, with biases).
MLP_SIZES = (784, 128, 64, 10)


# --------------------------------------------------------------------------
# Installed frameworks
# --------------------------------------------------------------------------

def installed(names=tuple(MISSING)) -> dict[str, bool]:
    """``{name: whether the package can be imported}``, without importing it."""
    return {name: importlib.util.find_spec(name) is not None for name in names}


def show_missing(found: dict[str, bool], sec=None) -> None:
    """Display, in bold, why each framework that :func:`installed` did not find is skipped,
    and record its part (:data:`PARTS`) as skipped in ``sec`` for the Status page."""
    from IPython.display import Markdown, display

    for name, ok in found.items():
        if not ok:
            display(Markdown(f"**Skipped: {MISSING[name]}**"))
            if sec is not None:
                note_skipped(sec, PARTS[name])


# --------------------------------------------------------------------------
# One sync
# --------------------------------------------------------------------------

def tied_kernel(shape=(784, 128), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A Keras-layout kernel with many ties: ``(theta0, current)``, float32.

    θ0 takes the values -4/8 ... 4/8 and is zero at about half of its positions (as after
    pruning); ``current`` is θ0 moved by -2/8 ... 2/8, so that many of its weights are
    tied too.  Ties are where implementations of the sync could differ.

    Args:
        shape: ``(inputs, outputs)``.
        seed: the NumPy generator's seed.
    """
    rng = np.random.default_rng(seed)
    theta0 = rng.integers(-4, 5, size=shape) / 8
    theta0[rng.random(theta0.shape) < 0.5] = 0.0
    current = theta0 + rng.integers(-2, 3, size=theta0.shape) / 8
    return theta0.astype("float32"), current.astype("float32")


def keras_synced(theta0, current) -> np.ndarray:
    """:class:`laperm.LaPerm`'s sync of ``current`` with θ0 = ``theta0`` (Keras layout).

    A variable holding ``theta0`` is given to a LaPerm (inner SGD, k = 1), which sorts
    θ0; the variable is then set to ``current`` and the optimizer's synchronised values
    are returned, as a NumPy array.
    """
    variable = keras.Variable(theta0, name="kernel")
    optimizer = LaPerm(keras.optimizers.SGD(), sync_period=1)
    optimizer.build([variable])
    variable.assign(current)
    return ops.convert_to_numpy(optimizer.synced_values()[0])


def tie_count(current) -> int:
    """How many weights of a Keras-layout kernel repeat a value of their own vector (column)."""
    columns = np.asarray(current).T
    return int(sum(len(c) - len(np.unique(c)) for c in columns))


def ties_sentence(theta0, current) -> str:
    """The ties among ``current``'s weights, and the share of θ0 that is zero."""
    return (f"{tie_count(current):,} tied current weights among {np.asarray(current).size:,} "
            f"({np.mean(np.asarray(theta0) == 0):.0%} of theta_0 is zero)")


def sync_table(synced: dict, theta0) -> pd.DataFrame:
    """Each implementation's sync against the Keras one (:data:`KERAS` in ``synced``).

    Args:
        synced: ``{implementation: synced kernel in the Keras layout}``.
        theta0: the kernel's initial values.

    Returns:
        One row per implementation: whether every value equals the Keras sync's, and
        whether every vector is a permutation of its vector of θ0.
    """
    reference = synced[KERAS]
    return pd.DataFrame([{
        "implementation": name,
        "every value equal to laperm.LaPerm's": bool(np.array_equal(values, reference)),
        "a permutation of theta_0 in every vector": is_permutation_of(theta0, values),
    } for name, values in synced.items()])


# --------------------------------------------------------------------------
# The network both frameworks train
# --------------------------------------------------------------------------

@dataclass
class MLPSetup:
    """What both trainings share: MNIST flattened, θ0 of a 784-128-64-10 ReLU network, batches.

    Attributes:
        x_train, y_train, x_test, y_test: images flattened to 784 floats in [0, 1]
            (float32) and labels (int64).
        kernels0: θ0's kernels in the Keras layout ``(in, out)``, He-uniform
            (U(-l, l), l = sqrt(6 / in)).
        biases0: θ0's biases, zeros.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    kernels0: list = field(default_factory=list)
    biases0: list = field(default_factory=list)

    @classmethod
    def mnist(cls, train_images: int, test_images: int, init_seed: int = 1) -> "MLPSetup":
        """The first ``train_images`` and ``test_images`` of MNIST; θ0 drawn with ``init_seed``."""
        (x_train, y_train), (x_test, y_test) = data.load("mnist")
        kernels0, biases0 = mlp_theta0(MLP_SIZES, init_seed)
        return cls(_flat(x_train[:train_images]), _labels(y_train[:train_images]),
                   _flat(x_test[:test_images]), _labels(y_test[:test_images]), kernels0, biases0)

    def describe(self, epochs: int, sync_period: int, batch_size: int = 128) -> str:
        """What both trainings run, in two lines: the images held, then the steps and syncs.

        Example: ``"2,000 training images (15 batches of 128 an epoch), 1,000 test images;"``
        and ``"1 epoch with k = 10: 15 steps, 1 sync."`` (a last incomplete batch is dropped,
        as in :meth:`batches`).
        """
        steps = len(self.x_train) // batch_size
        syncs = steps * epochs // sync_period
        return (f"{len(self.x_train):,} training images ({steps:,} batches of {batch_size} an "
                f"epoch), {len(self.x_test):,} test images;\n{epochs} epoch{'s' * (epochs != 1)} "
                f"with k = {sync_period}: {steps * epochs:,} steps, {syncs:,} "
                f"sync{'s' * (syncs != 1)}.")

    def batches(self, epoch: int, size: int = 128) -> list[np.ndarray]:
        """The shuffled batches (index arrays) of ``epoch``, the same for every framework.

        The order is drawn with the seed ``[2, epoch]``; a last incomplete batch is dropped.
        """
        order = np.random.default_rng([2, epoch]).permutation(len(self.x_train))
        return [order[i: i + size] for i in range(0, len(order) - size + 1, size)]


def _flat(images) -> np.ndarray:
    return (np.asarray(images).reshape(-1, 784) / 255).astype("float32")


def _labels(labels) -> np.ndarray:
    return np.asarray(labels).ravel().astype("int64")


def mlp_theta0(sizes=MLP_SIZES, seed: int = 1) -> tuple[list, list]:
    """He-uniform kernels (Keras layout) and zero biases of a dense network of ``sizes``."""
    init = np.random.default_rng(seed)
    kernels = [(init.uniform(-1, 1, (a, b)) * np.sqrt(6 / a)).astype("float32")
               for a, b in zip(sizes, sizes[1:])]
    return kernels, [np.zeros(b, "float32") for b in sizes[1:]]


@dataclass
class TrainedRun:
    """One framework's training of :class:`MLPSetup`'s network.

    Attributes:
        framework: e.g. ``"PyTorch"``.
        rows: one dict per epoch: ``framework, epoch, syncs, test_acc_synced,
            test_acc_inner, permutation_of_theta0``.
        same_sync_as_keras: whether :func:`keras_synced` of the final weights equals the
            framework's own synchronised weights, in every kernel.
        steps_since_sync: the inner steps taken since the last sync, at the end.
    """

    framework: str
    rows: list
    same_sync_as_keras: bool
    steps_since_sync: int

    def table(self) -> pd.DataFrame:
        """:attr:`rows` as a table a reader reads: accuracies as percentages (2 decimals),
        the columns named in words (:data:`EPOCH_COLUMNS`)."""
        t = pd.DataFrame(self.rows)
        for column in ("test_acc_synced", "test_acc_inner"):
            t[column] = t[column].map("{:.2%}".format)
        return t.rename(columns=EPOCH_COLUMNS)


def show_epochs(run: TrainedRun | None, skipped: str) -> None:
    """Display a run's table (:func:`laperm.book.show_table`), or print ``skipped`` without one."""
    if run is None or not run.rows:
        print(skipped)
    else:
        show_table(run.table())


def final_sync_table(runs) -> pd.DataFrame:
    """Per run (None ones left out): the steps since its last sync and whether the sync of
    its final weights by :class:`laperm.LaPerm` equals its own."""
    return pd.DataFrame([{"framework": run.framework,
                          "steps since the last sync": run.steps_since_sync,
                          "same sync as laperm.LaPerm's": run.same_sync_as_keras}
                         for run in runs if run is not None])


def findings(synced: dict, current, runs, train_images: int,
             found: dict[str, bool]) -> list[str]:
    """The page's findings: the one-sync comparison, each run's last epoch, what was skipped.

    Args:
        synced: as in :func:`sync_table`.
        current: the kernel that was synced (its ties are counted).
        runs: the :class:`TrainedRun` of each framework, None for one not run.
        train_images: the training images of each run.
        found: :func:`installed`.
    """
    reference = synced[KERAS]
    shape = " x ".join(map(str, np.shape(current)))
    if len(synced) > 1:
        verdicts = [f"{name} {'equals' if np.array_equal(v, reference) else 'differs from'} "
                    "laperm.LaPerm" for name, v in synced.items() if name != KERAS]
        lines = [f"One sync of a {shape} kernel with {tie_count(current)} ties: "
                 + ", ".join(verdicts) + "."]
    else:
        lines = ["Only the Keras implementation is installed here."]
    for run in runs:
        if run is not None and run.rows:
            last = run.rows[-1]
            lines.append(
                f"{last['framework']}: {last['epoch']} epochs of {train_images} images, "
                f"{last['syncs']} syncs; test accuracy {last['test_acc_synced']:.2%} on "
                f"synchronised weights; every kernel a permutation of theta_0 after each epoch: "
                f"{all(r['permutation_of_theta0'] for r in run.rows)}; the sync of the trained "
                f"weights equals laperm.LaPerm's: {run.same_sync_as_keras}.")
    return lines + [f"Skipped: {MISSING[name]}" for name, ok in found.items() if not ok]
