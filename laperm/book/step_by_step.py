"""The worked example of the book's page 4, *LaPerm, step by step* (Qiu & Suda 2020, Section 4).

The page trains F1's linear layer (``Flatten - Dense(10)``, no bias, He-uniform; F1
without the shared-value initialisation of Section 5.5) on MNIST with
:class:`laperm.LaPerm` and looks at what the syncs did.  The training itself stays on the
page; this module holds what is around it:

* the data and the scale line (:func:`mnist`, :func:`scale_text`, :func:`show_scale`,
  :func:`timed_syncs`);
* the toy sync's printout with its two checks (:func:`sync_report`) and the check that
  every trained vector holds its initial values (:func:`permutation_sentence`);
* the animation of the recorded syncs (:func:`reconnection_html`);
* plain Adam on the same model (:func:`adam_reference`), the accuracy table
  (:func:`accuracy_table`, :func:`paper_f1_note`, :func:`show_accuracy_table`) and the
  page's findings (:func:`findings`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import ops

from laperm import data, models, pretrained, viz
from laperm.analysis import profiles
from laperm.analysis.permutations import frame_indices, settling_table
from laperm.analysis.weights import first_kernel
from laperm.book.display import to_jshtml
from laperm.method import ops as lops
from laperm.method.callbacks import SyncProbe
from laperm.method.optimizer import LaPerm
from laperm.paper import PAPER_ACCURACY

#: The batch size of the page's runs (LaPerm and plain Adam).
BATCH_SIZE = 128
#: Matplotlib settings of the animation's frames: small JPEG frames keep the page light.
SMALL_FRAMES = {"figure.dpi": 100, "savefig.dpi": 100, "animation.frame_format": "jpeg"}


# --------------------------------------------------------------------------
# Data and scale
# --------------------------------------------------------------------------

def mnist(train_images: int, test_images: int, seed: int = 0):
    """MNIST scaled to [0, 1]: ``train_images`` training images and the first ``test_images``.

    Args:
        train_images: how many training images; fewer than 60000 draws a subset
            (:func:`laperm.data.subset`, stratified, with ``seed``).
        test_images: how many test images, taken from the start of the test set.
        seed: the subset's seed.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``, images as floats in [0, 1].
    """
    (x_train, y_train), (x_test, y_test) = data.load("mnist")
    if train_images < len(x_train):
        x_train, y_train = data.subset(x_train, y_train, train_images, seed=seed)
    x_test, y_test = x_test[:test_images], y_test[:test_images]
    return (x_train / 255.0, y_train), (x_test / 255.0, y_test)


def scale_text(sync_period: int, epochs: int, n_train: int, n_test: int,
               batch_size: int = BATCH_SIZE) -> str:
    """What the page's run is: the model, k, epochs, training images, steps and test images."""
    steps = int(np.ceil(n_train / batch_size)) * epochs
    return (f"F1-like Dense(10) + LaPerm(Adam, k={sync_period}), {epochs} epoch(s) "
            f"on {n_train:,} MNIST training images = {steps:,} steps; first {n_test:,} "
            "test images (reduced)")


def show_scale(sec, n_train: int, n_test: int) -> str:
    """Display :func:`scale_text` for the page's section ``sec`` and note it in its status."""
    from IPython.display import Markdown, display

    scale = scale_text(sec.sync_period, sec.epochs, n_train, n_test)
    display(Markdown(f"**Scale of this run:** {scale}."))
    sec.note_scale(scale)
    return scale


@contextmanager
def timed_syncs(optimizer):
    """Print how many syncs ``optimizer`` (a :class:`laperm.LaPerm`) has made, and in how long.

    Wrap the training in it: ``with timed_syncs(optimizer): model.fit(...)``.
    """
    t0 = time.perf_counter()
    yield
    print(f"{int(optimizer.sync_count.numpy())} syncs in {time.perf_counter() - t0:.1f} s")


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def sync_report(theta0, w, synced) -> str:
    """The toy sync of one vector, line by line, after checking what a sync promises.

    Args:
        theta0: the initial vector.
        w: the same vector after the inner optimizer's k steps.
        synced: ``w`` after the sync (:func:`laperm.method.ops.permute_to_ranks`).

    Returns:
        Lines with θ0, its sorted values, ``w``, the ranks of ``w``, the synced vector, and
        where the largest entry sits before and after.

    Raises:
        AssertionError: when ``synced`` does not hold θ0's values, or not in ``w``'s order.
    """
    theta0, w = np.asarray(theta0), np.asarray(w)
    synced = np.asarray(ops.convert_to_numpy(synced)).reshape(-1)
    assert sorted(synced) == sorted(theta0), "the sync changed the values of θ0"
    assert (np.argsort(synced) == np.argsort(w)).all(), "the sync changed the order of w"
    sorted0 = ops.convert_to_numpy(lops.sorted_rows(theta0))[0]
    ranks = ops.convert_to_numpy(lops.vector_ranks(w))[0]
    return "\n".join([
        f"theta_0        {theta0}",
        f"sorted(θ0) {sorted0}",
        f"w (before)     {w}",
        f"ranks(w)       {ranks}",
        f"w (after sync) {synced}",
        f"largest entry at position {np.argmax(w)} before and {np.argmax(synced)} after",
    ])


def permutation_check_display(check: pd.DataFrame) -> pd.DataFrame:
    """:func:`laperm.analysis.profiles.permutation_check_table` as a reader reads it: the
    largest gap between sorted vectors as a plain number (``0`` for a permutation) and the
    share of weights moved as a percentage with 1 decimal."""
    gap = "max |sorted(θT) − sorted(θ0)|"
    return check.assign(**{gap: check[gap].map("{:g}".format),
                           "weights moved": check["weights moved"].map("{:.1%}".format)})


def permutation_sentence(theta0, theta) -> str:
    """Whether every vector of ``theta`` is a permutation of its vector of ``theta0``, and
    the share of weights that changed place (:mod:`laperm.analysis.profiles`)."""
    return (f"every vector is a permutation of its initial vector: "
            f"{profiles.is_permutation_of(theta0, theta)}; "
            f"{profiles.moved_fraction(theta0, theta):.1%} of the weights changed place")


# --------------------------------------------------------------------------
# The animation
# --------------------------------------------------------------------------

def reconnection_html(theta0, recorder, max_frames: int) -> tuple[str, int]:
    """The ten vectors after the recorded syncs, animated, as HTML for the page.

    At most ``max_frames`` records are shown, evenly spaced
    (:func:`laperm.analysis.permutations.frame_indices`), drawn with
    :func:`laperm.viz.animate_reconnection` in small JPEG frames (:data:`SMALL_FRAMES`).

    Args:
        theta0: the initial ``(784, 10)`` kernel.
        recorder: the :class:`laperm.PermutationRecorder` of the training (its first variable).
        max_frames: the most frames.

    Returns:
        ``(html, number of frames)``; the HTML plays in a notebook (``IPython.display.HTML``).
    """
    records = next(iter(recorder.records.values()))
    pick = frame_indices(len(records), max_frames)
    with plt.rc_context(SMALL_FRAMES):
        anim = viz.animate_reconnection(
            theta0, [records[i] for i in pick], image_shape=(28, 28),
            vector=list(range(10)), steps=[recorder.steps[i] for i in pick],
            panel_size=1.3, interval=300, ncols=5)
        html = to_jshtml(anim)
    return html, len(pick)


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------

def adam_reference(theta0, train, test, epochs: int, learning_rate: float,
                   seed: int = 0) -> dict[str, float]:
    """The same model trained with plain Adam for as many steps, and its accuracy at θ0.

    Args:
        theta0: the kernel LaPerm started from (the model drawn with ``seed``).
        train: ``(x, y)`` training images and labels.
        test: ``(x, y)`` test images and labels.
        epochs: epochs of batch :data:`BATCH_SIZE`.
        learning_rate: Adam's.
        seed: :func:`keras.utils.set_random_seed` before the model is built.

    Returns:
        ``{"adam": test accuracy after training, "theta0": test accuracy at θ0}``.
    """
    keras.utils.set_random_seed(seed)
    model = models.f1(use_bias=False)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    adam = model.evaluate(*test, verbose=0)[1]
    model.set_weights([theta0])
    return {"adam": adam, "theta0": model.evaluate(*test, verbose=0)[1]}


def accuracy_table(acc: dict, sync_period: int, n_test: int, epochs: int) -> pd.DataFrame:
    """Test accuracy at θ0, of LaPerm (synchronised and inner weights) and of plain Adam.

    Args:
        acc: ``{"theta0", "laperm", "inner", "adam"}`` test accuracies (``"laperm"``: the
            synchronised weights, a permutation of θ0; ``"inner"``: the inner optimizer's
            weights since the last sync).
        sync_period: LaPerm's k.
        n_test: test images.
        epochs: training epochs.

    Returns:
        Columns ``weights, optimizer, test accuracy, test images, epochs``, one row each.
    """
    laperm_opt = f"LaPerm(Adam), k={sync_period}"
    table = pd.DataFrame([
        {"weights": "θ0 (He-uniform)", "optimizer": "-", "test accuracy": acc["theta0"]},
        {"weights": "LaPerm, synchronised (a permutation of θ0)", "optimizer": laperm_opt,
         "test accuracy": acc["laperm"]},
        {"weights": "LaPerm, inner weights since the last sync", "optimizer": laperm_opt,
         "test accuracy": acc["inner"]},
        {"weights": "plain Adam (values change freely)", "optimizer": "Adam",
         "test accuracy": acc["adam"]},
    ])
    table["test images"] = n_test
    table["epochs"] = epochs
    return table


def show_accuracy_table(acc: dict, sync_period: int, n_test: int, epochs: int) -> None:
    """Display :func:`accuracy_table` and, under it, :func:`paper_f1_note`."""
    from IPython.display import Markdown, display

    display(accuracy_table(acc, sync_period, n_test, epochs))
    display(Markdown(paper_f1_note()))


def paper_f1_note() -> str:
    """Why the paper's F1 accuracy is given for scale only (Section 5.5's initialisation)."""
    return (f"For scale only: the paper's F1 reaches {PAPER_ACCURACY['f1']:.2%} (paper) with a "
            "different initialisation, one shared value 0.08 with 40% of the weights zeroed "
            "(section 5.5), so that number is not comparable to this He-uniform model.")


def findings(epochs: int, sync_period: int, theta0, theta, acc: dict, n_test: int,
             records) -> list[str]:
    """The page's findings: the permutation check, the accuracies and which values settled.

    Args:
        epochs, sync_period: the run's.
        theta0, theta: the kernel at θ0 and after training (synchronised).
        acc: as in :func:`accuracy_table`.
        n_test: test images.
        records: the recorded ranks of the kernel (θ0, then each sync); the last sync's
            :func:`laperm.analysis.permutations.settling_table` of unit 0 (10% of the values
            in each group) gives the last sentence, left out when there was no sync.
    """
    settling = settling_table(records, vector=0, share=0.1)
    lines = [
        f"After {epochs} epoch(s) with k = {sync_period}, every one of the 10 weight vectors "
        f"holds exactly its initial values ({profiles.moved_fraction(theta0, theta):.1%} of the "
        "weights changed place).",
        f"Test accuracy: θ0 {acc['theta0']:.2%}; LaPerm, synchronised {acc['laperm']:.2%}; "
        f"LaPerm's inner weights {acc['inner']:.2%}; plain Adam {acc['adam']:.2%} "
        f"(on {n_test:,} test images).",
    ]
    if len(settling):
        last = settling.iloc[-1]
        lines.append(f"At the last sync, {last['extreme']:.0%} of unit 0's most extreme initial "
                     f"values changed place, against {last['middle']:.0%} of those nearest the "
                     "median.")
    return lines


# --------------------------------------------------------------------------
# The lecture's other figures: the saw-tooth (5.3) and digits of two values (5.5)
# --------------------------------------------------------------------------

#: How many sync periods the page's saw-tooth run lasts.
SAWTOOTH_PERIODS = 6


def sawtooth_rows(train, probe, sync_period: int, learning_rate: float, seed: int = 0,
                  periods: int = SAWTOOTH_PERIODS) -> pd.DataFrame:
    """The probe accuracy after every step of a fresh LaPerm run of the page's model
    (Section 5.3's saw-tooth, :class:`laperm.method.callbacks.SyncProbe`).

    The model is the page's ``Dense(10)`` drawn with ``seed``, trained for
    ``periods * sync_period`` steps of :data:`BATCH_SIZE` images (the training images
    taken in order, from the start again when they run out).

    Args:
        train: ``(x, y)`` training images and labels.
        probe: ``(x, y)`` the images the accuracy is measured on.
        sync_period: k.
        learning_rate: the inner Adam's.
        seed: the model's and the shuffling's seed.
        periods: sync periods the run lasts.

    Returns:
        ``SyncProbe.rows``: ``step``, ``accuracy``, ``weights`` (inner or synchronised).
    """
    steps = periods * sync_period
    index = np.arange(steps * BATCH_SIZE) % len(train[0])
    keras.utils.set_random_seed(seed)
    model = models.f1(use_bias=False)
    model.compile(optimizer=LaPerm(keras.optimizers.Adam(learning_rate), sync_period=sync_period),
                  loss="sparse_categorical_crossentropy")
    probe_cb = SyncProbe(*probe)
    model.fit(train[0][index], train[1][index], batch_size=BATCH_SIZE, epochs=1, shuffle=False,
              callbacks=[probe_cb], verbose=0)
    return pd.DataFrame(probe_cb.rows)


#: The committed run whose kernel the page draws as digits (Section 5.5's F1).
COMMITTED_F1 = "f1_laperm_s0"


def committed_digits(name: str = COMMITTED_F1):
    """The kernel of a committed F1 run (``pretrained/``) and a sentence about it.

    Returns:
        ``(kernel (784, 10), sentence)``: the sentence names the run (seed, scale, epochs,
        k), its test accuracy and test set, from the weights' manifest, and the distinct
        values of the kernel, counted from the weights themselves.
    """
    model, meta = pretrained.load(name)
    kernel = first_kernel(model)
    values = np.unique(np.round(kernel, 6))
    shown = ", ".join(f"{v:g}" for v in values) if len(values) <= 4 else \
        f"{len(values)} distinct values"
    sentence = (f"Our committed F1 LaPerm run (seed {meta['seed']}, {meta['scale']}, "
                f"{meta['epochs_run']} epochs, k = {meta['k']}): {meta['test_accuracy']:.2%} on "
                f"{meta['test_set']}. Its kernel holds {len(values)} distinct value(s): "
                f"{{{shown}}}.")
    return kernel, sentence
