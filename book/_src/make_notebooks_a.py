"""Generate the source notebooks of sections 2, 3, 4 and 6 of the book.

Run from the repository root::

    .venv/bin/python book/_src/make_notebooks_a.py

Writes ``book/02_weight_profiles.ipynb``, ``book/03_locations_vs_values.ipynb``,
``book/04_laperm.ipynb`` and ``book/06_published_checkpoints.ipynb`` without
outputs (the book executes them with papermill).  Each notebook follows the
book's contract: a ``parameters`` cell (``profile = "cpu"``, every other knob
``None``), a visible ``PROFILES`` table and ``book.setup(...)``, calls into
:mod:`laperm`, and ``book.finish(sec)`` last.
"""

from __future__ import annotations

import sys

from nbtools import code, md, notebook, params, setup_cell, write_notebooks


# Shared snippet: where the authors' checkpoints are.
REFERENCE_DIR_HELPER = r'''
from laperm.book import reference_dir as find_reference_dir  # parameter, $LAPERM_REFERENCE_DIR, ../shared

CHECKPOINTS_URL = "https://github.com/ihsuy/Train-by-Reconnect"
'''

# ---------------------------------------------------------------------------
# Section 2: weight profiles
# ---------------------------------------------------------------------------

NB02_NAMES = ("f2_epochs", "train_images", "conv7_train_images", "conv7_epochs",
              "imagenet", "imagenet_vectors", "reference_dir", "seed")
NB02_PROFILES = """
{
    "smoke": dict(f2_epochs=1, train_images=10000,
                  conv7_epochs=0, conv7_train_images=2000,
                  imagenet=False, imagenet_vectors=256,
                  reference_dir=None, seed=0),
    "cpu":   dict(f2_epochs=5, train_images=60000,
                  conv7_epochs=1, conv7_train_images=20000,
                  imagenet=False, imagenet_vectors=512,
                  reference_dir=None, seed=0),
    "paper": dict(f2_epochs=25, train_images=60000,
                  conv7_epochs=45, conv7_train_images=60000,
                  imagenet=True, imagenet_vectors=None,
                  reference_dir=None, seed=0),
}
"""


def nb02():
    cells = [
        md(r"""
# 2. Weight profiles: sorted weight vectors share one curve

Section 2 of {cite}`qiu2020train` starts from an observation. Take a layer of a trained
network and cut it into **weight vectors**: everything that feeds one output unit (a column
of a Dense kernel, or the `kh*kw*cin` values of one output channel of a convolution). Sort
every vector ascending and draw it against its normalised rank: the curves of one layer lie
almost on top of each other. The paper calls the common curve the layer's **weight
profile**. If every vector of a trained layer is (nearly) the same set of values in a
different order, training could just as well have *reordered* the initial values:
$\theta_T \approx \sigma(\theta_0)$. That is the idea LaPerm (section 4) builds on.

One caution before looking at pictures. The vectors of a *random* initialisation are
independent draws from one distribution, so their sorted curves also lie on one curve. A
similarity score therefore means little on its own. Every table below shows it three times:
for the weights in question, for $\theta_0$ (the initialisation), and for a **shuffled**
null model (the layer's values scattered at random over all its vectors). We use two scores
from `laperm.profiles`:

* **correlation**: the mean Pearson correlation between each sorted vector and the layer's
  mean profile. It measures shape only, and almost any layer scores close to 1.
* **rms similarity**: $1 - \mathrm{RMS}(\text{sorted vector} - \text{mean profile}) /
  \mathrm{std}(\text{layer})$. It also sees scale, so it drops when training stretches some
  vectors and leaves others alone.
"""),
        params(*NB02_NAMES),
        setup_cell("02_weight_profiles", NB02_PROFILES, NB02_NAMES),
        code(r'''
import time
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from laperm import data, models, profiles, viz

viz.set_style()
pd.set_option("display.precision", 4)
pd.set_option("display.max_columns", 20)
pd.set_option("display.width", 160)
''' + REFERENCE_DIR_HELPER + r'''

def tidy(table, base_label="init", baseline=None):
    """Reorder layer_profile_table's columns: each score at theta_0 / here / shuffled."""
    table = table.copy()
    if baseline is not None:   # the spread of the baseline's kernels, in the table's order
        table[f"std_{base_label}"] = [w.std() for _, w in profiles.named_weights(baseline) if w.ndim >= 2]
    cols = ["name", "shape", f"std_{base_label}", "std",
            f"correlation_{base_label}", "correlation", "correlation_shuffled",
            f"rms_similarity_{base_label}", "rms_similarity", "rms_similarity_shuffled"]
    out = table[[c for c in cols if c in table.columns]].copy()
    return out.rename(columns=lambda c: c.replace("rms_similarity", "rms").replace("correlation", "corr"))


def summarise(table, base_label, what):
    """One sentence computed from a table: how the rms score compares with theta_0 and the null."""
    n = len(table)
    below0 = int((table["rms_similarity"] < table[f"rms_similarity_{base_label}"]).sum())
    below_null = int((table["rms_similarity"] < table["rms_similarity_shuffled"]).sum())
    corr_min = table[["correlation", f"correlation_{base_label}", "correlation_shuffled"]].min().min()
    return (f"**{what}:** every correlation score in the table, including those of the "
            f"initialisation and of the shuffled null, is at least {corr_min:.3f}. "
            f"The rms similarity is lower than at initialisation in {below0} of {n} layers "
            f"and lower than the shuffled null in {below_null} of {n}.")
''', "remove-input"),
        md(r"""
## (a) A network trained here with plain Adam

F2 is the paper's small MNIST MLP (784-128-64-10, He-uniform initialisation, no biases).
We keep its initial weights $\theta_0$ and train it with Adam (learning rate $10^{-3}$,
batch 128). This is ordinary training, not LaPerm, and it is reduced in size: the numbers
say what a few epochs of Adam do to the profiles. They do not reproduce a paper figure.
"""),
        code(r'''
(x_train, y_train), (x_test, y_test) = data.load("mnist")
if sec.train_images < len(x_train):
    x_tr, y_tr = data.subset(x_train, y_train, sec.train_images, seed=sec.seed)
else:
    x_tr, y_tr = x_train, y_train

keras.utils.set_random_seed(sec.seed)
f2 = models.f2()                  # He-uniform kernels, no biases
theta0_f2 = f2.get_weights()      # theta_0, kept for the comparison
f2.compile(optimizer=keras.optimizers.Adam(1e-3),
           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
t0 = time.perf_counter()
f2.fit(x_tr / 255.0, y_tr, batch_size=128, epochs=sec.f2_epochs, verbose=0)
f2_acc = f2.evaluate(x_test / 255.0, y_test, verbose=0)[1]
scale_f2 = (f"F2 + Adam, {sec.f2_epochs} epoch(s) on {len(x_tr)} MNIST training images "
            "(reduced)")
sec.note_scale(scale_f2)
print(f"{scale_f2}: test accuracy {f2_acc:.4f} on {len(x_test)} images, "
      f"{time.perf_counter() - t0:.0f} s")
'''),
        md(r"""
Top row: the sorted vectors of $\theta_0$. Bottom row: the same layers after training. Each
thin line is one sorted weight vector, the black line is their mean (the weight profile) and
the dashed line in the bottom row is the mean profile at initialisation. Each panel's box
gives the two scores, and in the bottom row also their values at initialisation.
"""),
        code(r'''
fig, axes = plt.subplots(2, 3, figsize=(11, 6.4))
viz.plot_profile_grid(theta0_f2, axes=axes[0])
viz.plot_profile_grid(f2, baseline=theta0_f2, axes=axes[1])
for ax, shape in zip(axes[0], ["784x128", "128x64", "64x10"]):
    ax.set_title(f"theta_0: dense {shape}")
fig.suptitle("F2: sorted weight vectors at initialisation (top), after Adam (bottom)")
fig.tight_layout()
plt.show()
''', "hide-input"),
        code(r'''
table_f2 = profiles.layer_profile_table(f2, baseline=theta0_f2, shuffled=True)
display(tidy(table_f2, baseline=theta0_f2))
display(Markdown(summarise(table_f2, "init", "F2 trained with Adam")))
'''),
        md(r"""
How to read this. The **correlation** column does not tell trained from random: the
initialisation and the shuffled null score about as high as the trained layer. The
**rms similarity** and the two `std` columns show what training changed. The profiles'
tails become longer than the straight line of a uniform initialisation (the largest
weights grow), and the vectors stop sharing one scale. The first layer also shows a flat segment at 0
in the middle of its profile. Many of its inputs are MNIST border pixels that are (almost)
always 0, so their weights get (almost) no gradient from the data, only from F2's L2
penalty. Adam rescales every gradient to a similar step size, so it pulls these weights to
0 quickly. The weights of central pixels grow at the same time. After training, the first
layer's values are no longer a uniform draw, and how far each vector moves depends on how
many of its inputs carry signal. The rms similarity measures exactly that.
"""),
        md(r"""
### A convolutional network: Conv7 trained with Adam

The same measurement for Conv7, the paper's 7-layer MNIST convnet, trained here with Adam
(reduced: see the line below the code). Its kernels and biases start from He-uniform draws.
The `smoke` profile skips this part (`conv7_epochs=0`) to stay fast.
"""),
        code(r'''
if sec.conv7_epochs < 1:
    display(Markdown("Skipped in this profile (`conv7_epochs=0`)."))
else:
    keras.backend.clear_session()
    keras.utils.set_random_seed(sec.seed)
    conv7_adam = models.conv7()
    theta0_conv7 = conv7_adam.get_weights()
    if sec.conv7_train_images < len(x_train):
        x_c, y_c = data.subset(x_train, y_train, sec.conv7_train_images, seed=sec.seed)
    else:
        x_c, y_c = x_train, y_train
    conv7_adam.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    conv7_adam.fit(x_c[..., None] / 255.0, y_c, batch_size=50,
                   epochs=sec.conv7_epochs, verbose=0)
    conv7_acc = conv7_adam.evaluate(x_test[..., None] / 255.0, y_test,
                                    batch_size=500, verbose=0)[1]
    scale_c7 = (f"Conv7 + Adam, {sec.conv7_epochs} epoch(s) on {len(x_c)} MNIST training "
                "images, no augmentation (reduced)")
    sec.note_scale(scale_c7)
    print(f"{scale_c7}: test accuracy {conv7_acc:.4f}, "
          f"{time.perf_counter() - t0:.0f} s")

    fig = viz.plot_profile_grid(conv7_adam, baseline=theta0_conv7, ncols=4)
    fig.suptitle("Conv7 trained with Adam (dashed: mean profile at initialisation)",
                 y=1.02)
    plt.show()
    table_c7 = profiles.layer_profile_table(conv7_adam, baseline=theta0_conv7,
                                            shuffled=True)
    display(tidy(table_c7, baseline=theta0_conv7))
    display(Markdown(summarise(table_c7, "init", "Conv7 trained with Adam")))
''', "hide-input"),
        md(r"""
## (b) The authors' published checkpoints

The authors released weights for Conv7 and ResNet50 (among others, see
[section 6](06_published_checkpoints.ipynb)). These networks were trained **with LaPerm**.
Every weight vector of such a network is by construction a permutation of its He-uniform
initial vector, so its sorted profile *is* an initialisation profile: a straight line from
$-\text{limit}$ to $+\text{limit}$, where $\text{limit} = \sqrt{6/n_\text{in}}$ and $n_\text{in}$
is the vector's length (the fan-in). This is
not independent evidence for section 2's observation; it shows what LaPerm keeps fixed. The
authors' $\theta_0$ was not published, so the baseline here is a *fresh* He-uniform
initialisation of the same architecture (same distribution, different draw). The last two
columns check the He-uniform claim directly: the largest $|w|$ divided by the limit should
be at most 1, and the std divided by the std of that uniform distribution
($\text{limit}/\sqrt 3$) should be about 1.
"""),
        code(r'''
ref_dir = find_reference_dir(sec.reference_dir)
if ref_dir is None:
    display(Markdown(
        "**The authors' checkpoints were not found** (looked at the `reference_dir` "
        "parameter, `$LAPERM_REFERENCE_DIR` and `../shared/reference/pretrained`). "
        f"Download `Conv7.h5` and `resnet50.h5` from the authors' repository "
        f"{CHECKPOINTS_URL} (folder `pretrained`), put them in a folder and set "
        "`LAPERM_REFERENCE_DIR` to it. Part (b) is skipped."))
else:
    print(f"authors' checkpoints: {ref_dir}")


def he_uniform_check(model):
    """max|w| / sqrt(6/fan_in) and std / (limit/sqrt(3)) for every kernel."""
    rows = []
    for name, w in profiles.named_weights(model):
        if w.ndim < 2:
            continue
        limit = np.sqrt(6.0 / np.prod(w.shape[:-1]))
        rows.append({"name": name, "max|w| / limit": np.abs(w).max() / limit,
                     "std / (limit/sqrt3)": w.std() / (limit / np.sqrt(3.0))})
    return pd.DataFrame(rows)
''', "hide-input"),
        code(r'''
if ref_dir is not None:
    keras.backend.clear_session()
    conv7_ref = models.conv7()
    conv7_ref.load_weights(ref_dir / "Conv7.h5")
    keras.utils.set_random_seed(sec.seed + 1)
    conv7_fresh = models.conv7()       # a fresh He-uniform draw: the baseline
    fig = viz.plot_profile_grid(conv7_ref, baseline=conv7_fresh, ncols=4)
    fig.suptitle("Conv7, authors' LaPerm checkpoint "
                 "(dashed: a fresh He-uniform initialisation)", y=1.02)
    plt.show()
    table_ref = profiles.layer_profile_table(conv7_ref, baseline=conv7_fresh,
                                             baseline_label="fresh_init", shuffled=True)
    shown = tidy(table_ref, "fresh_init", conv7_fresh)
    display(shown.merge(he_uniform_check(conv7_ref), on="name"))
    display(Markdown(summarise(table_ref, "fresh_init", "Conv7, authors' checkpoint")))
'''),
        md(r"""
ResNet50 (the CIFAR-10 ResNet of depth 50) has 52 kernels. The figure shows six of them
(the stem, convolutions from each stage, a 1x1 shortcut projection and the classifier). The
table averages the scores over kernels of the same shape.
"""),
        code(r'''
if ref_dir is not None:
    keras.backend.clear_session()
    resnet_ref = models.resnet(depth=50)
    resnet_ref.load_weights(ref_dir / "resnet50.h5")
    keras.utils.set_random_seed(sec.seed + 1)
    resnet_fresh = models.resnet(depth=50)
    kernels = [(n, w) for n, w in profiles.named_weights(resnet_ref) if w.ndim >= 2]
    fresh = [w for w in resnet_fresh.get_weights() if w.ndim >= 2]
    shapes = [w.shape for _, w in kernels]
    picks = [0, 1, shapes.index((3, 3, 32, 32)), shapes.index((1, 1, 16, 32)),
             shapes.index((3, 3, 64, 64)), len(kernels) - 1]
    chosen = {kernels[i][0]: kernels[i][1] for i in picks}
    chosen_fresh = {k: fresh[i] for k, i in zip(chosen, picks)}
    fig = viz.plot_profile_grid(chosen, baseline=chosen_fresh, ncols=3)
    fig.suptitle("ResNet50, authors' LaPerm checkpoint: 6 of 52 kernels", y=1.02)
    plt.show()
    table_rn = profiles.layer_profile_table(dict(kernels), baseline=fresh,
                                            baseline_label="fresh_init", shuffled=True)
    table_rn = table_rn.merge(he_uniform_check(dict(kernels)), on="name")
    table_rn["shape"] = table_rn["shape"].astype(str)
    groups = table_rn.drop(columns=["name"]).groupby(["shape", "vector_length"], sort=False)
    by_shape = groups.mean(numeric_only=True)
    by_shape.insert(0, "kernels", groups.size())
    order = ["kernels", "std",
             "correlation_fresh_init", "correlation", "correlation_shuffled",
             "rms_similarity_fresh_init", "rms_similarity", "rms_similarity_shuffled",
             "max|w| / limit", "std / (limit/sqrt3)"]
    display(by_shape[order].rename(columns=lambda c: c.replace("rms_similarity", "rms")
                                   .replace("correlation", "corr")))
    display(Markdown(summarise(table_rn, "fresh_init", "ResNet50, authors' checkpoint")))
''', "hide-input"),
        md(r"""
As expected for LaPerm-trained weights, the authors' kernels score like a fresh He-uniform
draw: their values never left the initial multiset. What a network trained by LaPerm
learned is entirely in *where* the values sit. Sections 3 and 4 look at that.
"""),
        md(r"""
## (c) ImageNet-trained VGG16 (optional, needs a download)

The paper's section 2 figures use ImageNet-trained Keras applications, whose weights need a
download; for
example VGG16's `fc1` kernel is 25088 x 4096. The weights (about 530 MB) are downloaded by
`keras.applications.VGG16(weights="imagenet")` on first use, so this part only runs with
the parameter `imagenet=True` (`laperm run 02_weight_profiles -p imagenet true`). For speed
we measure `imagenet_vectors` randomly chosen output units per layer (`None` = all). The
baseline is a Glorot-uniform draw of the same shape (the Keras default initialiser of
these Dense layers).
"""),
        code(r'''
def vgg16_fc_layers(n_vectors=None, seed=0):
    """VGG16's Dense kernels (ImageNet) and Glorot-uniform baselines, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vgg = keras.applications.VGG16(weights="imagenet")
    except Exception as exc:  # no network, proxy, disk full, ...
        display(Markdown(
            "**Could not load the ImageNet weights of VGG16** "
            f"(`{type(exc).__name__}: {str(exc)[:160]}`). They are downloaded from "
            "the Keras storage on first use (about 530 MB, into `~/.keras/models`); "
            "run this section on a machine with internet access. Part (c) is skipped."))
        return None
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


if not sec.imagenet:
    display(Markdown("Skipped: `imagenet=False` in this profile "
                     "(the weights need a download)."))
else:
    loaded = vgg16_fc_layers(sec.imagenet_vectors, seed=sec.seed)
    if loaded is not None:
        vgg_fc, vgg_init = loaded
        fig = viz.plot_profile_grid(vgg_fc, baseline=vgg_init, ncols=3)
        fig.suptitle("VGG16 (ImageNet) fully-connected kernels "
                     "(dashed: Glorot-uniform draw)", y=1.02)
        plt.show()
        table_vgg = profiles.layer_profile_table(
            vgg_fc, baseline=vgg_init, baseline_label="glorot_init", shuffled=True)
        display(tidy(table_vgg, "glorot_init", vgg_init))
        display(Markdown(summarise(table_vgg, "glorot_init", "VGG16 (ImageNet)")))
''', "hide-input"),
        md(r"""
## What this section shows

* Sorted weight vectors of one layer do lie on one curve after training, but they already
  did at initialisation, and so does a random shuffle of the layer. A profile plot alone is
  weak evidence. The scores have to be read next to $\theta_0$ and the null model.
* Ordinary training (Adam here) changes the **values** as well. The profiles' tails
  lengthen, and weights that receive little gradient from the data behave differently from
  the rest (in F2, L2 plus Adam pulls them to 0), so the vectors of a layer no longer share
  one scale. The rms similarity picks this up; the correlation hardly moves.
* A network trained by LaPerm keeps every vector's initial values exactly, so its profiles
  are those of the initialisation (the authors' checkpoints above). Whether that costs
  accuracy is the question of [section 3](03_locations_vs_values.ipynb), which re-permutes
  $\theta_0$ into the order of an Adam-trained $\theta_t$, and of the training experiments
  in section 5.
"""),
        code("book.finish(sec);", "remove-cell"),
    ]
    return notebook(cells)


# ---------------------------------------------------------------------------
# Section 3: locations vs values
# ---------------------------------------------------------------------------

NB03_NAMES = ("f2_epochs", "f2_train_images", "conv7_epochs", "conv7_train_images",
              "test_images", "n_checkpoints", "learning_rate", "seed")
NB03_PROFILES = """
{
    "smoke": dict(f2_epochs=1, f2_train_images=10000,
                  conv7_epochs=0, conv7_train_images=0,
                  test_images=2000, n_checkpoints=8,
                  learning_rate=1e-3, seed=0),
    "cpu":   dict(f2_epochs=5, f2_train_images=60000,
                  conv7_epochs=1, conv7_train_images=10000,
                  test_images=2000, n_checkpoints=12,
                  learning_rate=1e-3, seed=0),
    "paper": dict(f2_epochs=25, f2_train_images=60000,
                  conv7_epochs=10, conv7_train_images=60000,
                  test_images=10000, n_checkpoints=40,
                  learning_rate=1e-3, seed=0),
}
"""


def nb03():
    cells = [
        md(r"""
# 3. Locations vs values: re-permuting θ₀ into the order of θₜ

If training mostly decides *where* values sit and not *what* they are (section 2), then
the following network should work about as well as the trained one. Take the initial
weights $\theta_0$. In every weight vector, put the $i$-th smallest initial value where
the trained vector $\theta_t$ has its $i$-th smallest entry. The result, written
$\tilde\theta_t = \mathrm{repermute}(\theta_0, \theta_t)$, has exactly the values of
$\theta_0$ (every vector keeps its own multiset) and the ranks of $\theta_t$. It is what
one LaPerm sync would produce from $\theta_t$ {cite}`qiu2020train`.

Here we train networks with **plain Adam**. At checkpoints along the way we build
$\tilde\theta_t$ with `laperm.profiles.repermute_model` and measure the test accuracy of
both networks. Two reference points come with it: $\theta_0$ itself (step 0) and a
**random** permutation of $\theta_0$ within each vector (same values, random locations).
Two models from the paper: F2 (an MLP, 784-128-64-10, no biases) and Conv7 (a 7-layer
convnet with biases), both He-uniform initialised.
"""),
        params(*NB03_NAMES),
        setup_cell("03_locations_vs_values", NB03_PROFILES, NB03_NAMES),
        code(r'''
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from laperm import data, models, profiles, viz

viz.set_style()
pd.set_option("display.precision", 4)
(x_train_all, y_train_all), (x_test_all, y_test_all) = data.load("mnist")
''', "remove-input"),
        md(r"""
The measurement is a Keras callback. After each optimizer step listed in `at_steps`, it
copies the current weights $\theta_t$, re-permutes $\theta_0$ by their ranks and evaluates
both networks on the test images with a separate `probe` model, so training is not
disturbed. It also records how far $\theta_t$ has moved from $\theta_0$ in two ways: in
order (the mean Spearman rank correlation between each vector of $\theta_t$ and of
$\theta_0$; 1 means the same order, about 0 an unrelated one) and in value
($\lVert\theta_t - \theta_0\rVert / \lVert\theta_0\rVert$ over the kernels). By default only kernels are re-permuted, as in LaPerm's default. For a model
with biases (Conv7) a second variant re-permutes every variable.
"""),
        code(r'''
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


def rank_correlation(kernels0, kernels_t):
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


def relative_change(kernels0, kernels_t):
    """||theta_t - theta_0|| / ||theta_0|| over the kernels."""
    diff = sum(np.sum((b - a) ** 2) for a, b in zip(kernels0, kernels_t))
    return float(np.sqrt(diff / sum(np.sum(a ** 2) for a in kernels0)))
''', "hide-input"),
        code(r'''
class Repermutation(keras.callbacks.Callback):
    """At chosen steps: accuracy of theta_t and of theta_0 re-permuted by its ranks."""

    def __init__(self, theta0, probe, x, y, at_steps, steps_per_epoch):
        super().__init__()
        self.theta0, self.probe, self.x, self.y = theta0, probe, x, y
        self.at_steps = set(int(s) for s in at_steps)
        self.steps_per_epoch = steps_per_epoch
        self.has_1d = any(w.ndim < 2 for w in theta0)
        self.rows = []

    def accuracy(self, weights):
        self.probe.set_weights(weights)
        p = self.probe.predict(self.x, batch_size=1000, verbose=0)
        return float(np.mean(np.argmax(p, axis=1) == self.y))

    def measure(self, step):
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


def run(model_name, epochs, train_images, batch_size):
    """Train with Adam; return (curve, random-permutation accuracy, scale label)."""
    x, y = x_train_all, y_train_all
    if train_images < len(x):
        x, y = data.subset(x, y, train_images, seed=sec.seed)
    x_test, y_test = x_test_all[: sec.test_images], y_test_all[: sec.test_images]
    if model_name == "conv7":            # Conv7 wants a channel axis
        x, x_test = x[..., None], x_test[..., None]
    x, x_test = x / 255.0, x_test / 255.0
    keras.utils.set_random_seed(sec.seed)
    model = models.get(model_name)       # He-uniform initialisation
    probe = models.get(model_name)       # a copy, only to evaluate other weights
    theta0 = model.get_weights()
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    total = steps_per_epoch * epochs
    at_steps = np.geomspace(1, total, sec.n_checkpoints).round().astype(int)
    callback = Repermutation(theta0, probe, x_test, y_test, at_steps, steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(sec.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[callback],
              verbose=0)
    random_acc = callback.accuracy(random_repermutation(theta0, sec.seed))
    scale = (f"{model_name.upper()} + Adam (lr {sec.learning_rate:g}, batch "
             f"{batch_size}), {epochs} epoch(s) on {len(x)} MNIST training images = "
             f"{total} steps; accuracy on the first {len(x_test)} test images (reduced)")
    return pd.DataFrame(callback.rows), random_acc, scale
'''),
        code(r'''
plan = [("f2", sec.f2_epochs, sec.f2_train_images, 128)]
if sec.conv7_epochs > 0:
    plan.append(("conv7", sec.conv7_epochs, sec.conv7_train_images, 50))
runs = {}
for name, epochs, n_train, batch in plan:
    t0 = time.perf_counter()
    curve, random_acc, scale = run(name, epochs, n_train, batch)
    runs[name] = dict(curve=curve, random_acc=random_acc, scale=scale)
    sec.note_scale(scale)
    seconds = time.perf_counter() - t0
    display(Markdown(f"**Scale of this run:** {scale}; {seconds:.0f} s."))
if sec.conv7_epochs <= 0:
    display(Markdown("Conv7 is skipped in this profile (`conv7_epochs=0`)."))
'''),
        code(r'''
fig, axes = plt.subplots(len(runs), 2, figsize=(12, 4.0 * len(runs)), squeeze=False,
                         gridspec_kw=dict(width_ratios=[1.5, 1]))
for (name, r), (ax1, ax2) in zip(runs.items(), axes):
    curve = r["curve"]
    total = curve["step"].max()
    acc_cols = [c for c in curve.columns if c.startswith(("theta_t", "repermuted"))]
    long = curve.melt(id_vars=["step"], value_vars=acc_cols, var_name="network",
                      value_name="test accuracy")
    viz.plot_training_curves(long, x="step", y="test accuracy", hue="network", ax=ax1,
                             marker="o", errorbar=None)
    ax1.axhline(r["random_acc"], color="0.5", ls=":",
                label="random permutation of theta_0")
    ax1.set_title(f"{name.upper()}: test accuracy while Adam trains")
    ax1.set_ylim(0, 1)
    ax1.legend(loc="lower right")
    ax2.plot(curve["step"], curve["rank correlation with theta_0"], marker="o", ms=3,
             label="rank correlation with theta_0 (order)")
    ax2.plot(curve["step"], curve["relative value change"], marker="s", ms=3,
             label="||theta_t - theta_0|| / ||theta_0|| (values)")
    ax2.set_xlabel("step")
    ax2.set_title(f"{name.upper()}: how far theta_t is from theta_0 (kernels)")
    ax2.set_ylim(0, None)
    ax2.legend(loc="center left")
    for ax in (ax1, ax2):
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, total * 1.3)
fig.tight_layout()
plt.show()
''', "hide-input"),
        code(r'''
rows, notes = [], []
for name, r in runs.items():
    curve, final = r["curve"], r["curve"].iloc[-1]
    best = curve.loc[curve["repermuted theta_0"].idxmax()]
    n_test = min(sec.test_images, len(x_test_all))
    se = np.sqrt(final["theta_t"] * (1 - final["theta_t"]) / n_test)
    row = {"model": name.upper(), "steps": int(final["step"]),
           "theta_0": curve.iloc[0]["theta_t"],
           "random permutation of theta_0": r["random_acc"],
           "theta_t (Adam)": final["theta_t"],
           "repermuted theta_0": final["repermuted theta_0"]}
    if "repermuted theta_0 (biases too)" in curve:
        row["repermuted theta_0 (biases too)"] = final["repermuted theta_0 (biases too)"]
    row["best repermuted (step)"] = (f"{best['repermuted theta_0']:.4f} "
                                     f"({int(best['step'])})")
    row["rank correlation with theta_0"] = final["rank correlation with theta_0"]
    row["relative value change"] = final["relative value change"]
    rows.append(row)
    gap = final["theta_t"] - final["repermuted theta_0"]
    note = (
        f"- **{name.upper()}:** at the last checkpoint the re-permuted network is "
        f"{100 * abs(gap):.2f} points {'below' if gap >= 0 else 'above'} theta_t "
        f"(standard error of each accuracy about {100 * se:.2f} points on {n_test} test "
        f"images). Its best point was {best['repermuted theta_0']:.2%} at step "
        f"{int(best['step'])}, when theta_t had {best['theta_t']:.2%} and the kernel "
        f"values had moved by {best['relative value change']:.0%} of theta_0's norm "
        f"(at the end: {final['relative value change']:.0%}).")
    if best["step"] < final["step"]:
        note += (" It peaked **before** the end of training: re-permuting later, after "
                 "the values had drifted further, kept less of Adam's accuracy.")
    notes.append(note)
display(pd.DataFrame(rows).set_index("model"))
display(Markdown("\n".join(notes)))
''', "hide-input"),
        md(r"""
## What it means

* At step 0 both networks are $\theta_0$, at chance level. A random permutation of
  $\theta_0$ is also at chance: the multiset of values alone carries no information.
* Every point of the orange curve above chance is information carried **only by the
  order** Adam imposed on each weight vector. The values are those of the random
  initialisation.
* The right panels show how far $\theta_t$ has moved from $\theta_0$, in order and in value.
  Compare them with the left panels: the accuracy can rise far above chance while the rank
  correlation is still close to 1. Many small swaps within each vector are enough to
  reconnect a network; its order does not have to become unrecognisable.
* The gap between the curves is the part of Adam's solution that the ranks do not capture.
  Adam changes the values too: it rescales some vectors, lengthens the tails
  of the profiles (section 2) and, in F2, pulls the weights of empty border pixels to 0
  (F2 has an L2 penalty). The further $\theta_t$'s values drift from $\theta_0$'s, the less
  its rank order suits the old values.
* This is the reason LaPerm synchronises **every k steps** instead of re-permuting once at
  the end. The inner optimizer never gets further than k steps from a permutation of
  $\theta_0$, so its ranks stay meaningful for $\theta_0$'s values, and it keeps adapting
  to the reconnected network (section 4). Re-permuting a freely trained network afterwards,
  as here, is a much harder test. How much accuracy it keeps depends on how far the
  values have moved.

These are reduced runs (see the scale lines above). The `paper` profile trains both models
longer on the full training set. The measurement is the same at every scale.
"""),
        code("book.finish(sec);", "remove-cell"),
    ]
    return notebook(cells)


# ---------------------------------------------------------------------------
# Section 4: LaPerm on a tiny model
# ---------------------------------------------------------------------------

NB04_NAMES = ("epochs", "train_images", "test_images", "sync_period", "learning_rate",
              "max_frames", "seed")
NB04_PROFILES = """
{
    "smoke": dict(epochs=1, train_images=10000, test_images=2000,
                  sync_period=10, learning_rate=1e-3, max_frames=12,
                  seed=0),
    "cpu":   dict(epochs=5, train_images=60000, test_images=10000,
                  sync_period=100, learning_rate=1e-3, max_frames=20,
                  seed=0),
    "paper": dict(epochs=10, train_images=60000, test_images=10000,
                  sync_period=250, learning_rate=1e-3, max_frames=40,
                  seed=0),
}
"""


def nb04():
    cells = [
        md(r"""
# 4. LaPerm, step by step

LaPerm (*lookahead permutation*, {cite}`qiu2020train` section 4) trains a network without
ever changing its set of weight values. It follows the Lookahead optimizer
{cite}`zhang2019lookahead`: an ordinary **inner optimizer** (Adam) takes k steps on the
weights, then a **sync** replaces the weights by something derived from them. In Lookahead
that is an interpolation with slow weights. In LaPerm it is a *reconnection*: every weight
vector receives its own initial values, sorted, in the order of the current weights:

```text
every k steps, for every weight vector w:   w  <-  sort(w_0)[ranks(w)]
```

Here `ranks(w) = argsort(argsort(w))`. The $i$-th smallest entry of `w` receives the $i$-th
smallest initial value. Adam's state (moments, step count) is kept across syncs. After a
sync every vector holds exactly the multiset of values it started with. Training has only
changed which input connects to which value.
"""),
        params(*NB04_NAMES),
        setup_cell("04_laperm", NB04_PROFILES, NB04_NAMES),
        code(r'''
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display
from keras import ops

import laperm
from laperm import data, models, profiles, viz
from laperm.experiment import PAPER_ACCURACY

viz.set_style()
pd.set_option("display.precision", 4)
''', "remove-input"),
        md(r"""
## One sync on a toy vector

`laperm.ops` holds the arithmetic of a sync. `sorted_rows` sorts the initial vector once
(`sorted0`, kept for the whole training), and `permute_to_ranks` reconnects a vector. Here
$\theta_0$ has 6 values and the inner optimizer has moved them to `w`:
"""),
        code(r'''
from laperm import ops as lops

theta0_toy = np.array([0.50, -0.20, 0.10, -0.70, 0.30, 0.90], dtype="float32")
# the same vector after k inner optimizer steps
w_toy = np.array([0.42, 0.35, -0.80, 0.05, 1.30, -0.15], dtype="float32")

sorted0 = lops.sorted_rows(theta0_toy)                 # once, before training
synced = ops.convert_to_numpy(lops.permute_to_ranks(w_toy, sorted0))
print("theta_0       ", theta0_toy)
print("sorted(theta_0)", ops.convert_to_numpy(sorted0)[0])
print("w (before)    ", w_toy)
print("ranks(w)      ", ops.convert_to_numpy(lops.vector_ranks(w_toy))[0])
print("w (after sync)", synced)
assert sorted(synced) == sorted(theta0_toy)            # same values as theta_0
assert (np.argsort(synced) == np.argsort(w_toy)).all()  # same order as w
'''),
        md(r"""
The synced vector keeps the order of `w` (its largest entry is still in position 4) and
the values of $\theta_0$.

## A tiny model: one Dense layer on MNIST

The model is F1 without the shared-value trick of section 5.5: `Flatten - Dense(10,
softmax)`, no bias, He-uniform initialisation. Its kernel is 784 x 10, so each of the ten
weight vectors holds one weight per pixel and can be drawn as a 28 x 28 image. We wrap
Adam in `laperm.LaPerm` and record the ranks of every vector after each sync with
`laperm.PermutationRecorder`.
"""),
        code(r'''
(x_train, y_train), (x_test, y_test) = data.load("mnist")
if sec.train_images < len(x_train):
    x_train, y_train = data.subset(x_train, y_train, sec.train_images, seed=sec.seed)
x_test, y_test = x_test[: sec.test_images], y_test[: sec.test_images]
x_train, x_test = x_train / 255.0, x_test / 255.0

keras.utils.set_random_seed(sec.seed)
model = models.f1(use_bias=False)             # Flatten - Dense(10), He-uniform kernel
theta0 = model.get_weights()[0].copy()        # (784, 10)

optimizer = laperm.LaPerm(keras.optimizers.Adam(sec.learning_rate),
                          sync_period=sec.sync_period)
model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
recorder = laperm.PermutationRecorder()       # ranks of theta_0, then after every sync

steps = int(np.ceil(len(x_train) / 128)) * sec.epochs
scale = (f"F1-like Dense(10) + LaPerm(Adam, k={sec.sync_period}), {sec.epochs} epoch(s) "
         f"on {len(x_train)} MNIST training images = {steps} steps; first {len(x_test)} "
         "test images (reduced)")
display(Markdown(f"**Scale of this run:** {scale}."))
sec.note_scale(scale)

t0 = time.perf_counter()
model.fit(x_train, y_train, batch_size=128, epochs=sec.epochs, callbacks=[recorder],
          verbose=0)
print(f"{int(optimizer.sync_count.numpy())} syncs in {time.perf_counter() - t0:.1f} s")

with optimizer.synchronised():                # weights = a permutation of theta_0
    laperm_acc = model.evaluate(x_test, y_test, verbose=0)[1]
    theta_T = model.get_weights()[0].copy()
# outside the context: the inner optimizer's weights since the last sync
inner_acc = model.evaluate(x_test, y_test, verbose=0)[1]
'''),
        md(r"""
## The ten weight vectors before and after

Each image is one output unit's 784 weights in pixel order: red pixels push the input
towards that digit, blue pixels away from it. Top: $\theta_0$, uniform noise. Bottom: the
same values after LaPerm, reconnected so that each unit comes to look for its digit's
strokes (clearer with more training steps).
"""),
        code(r'''
fig = viz.plot_vectors_as_images(theta0, ncols=10, panel_size=1.25,
                                 titles=[f"{d} (theta_0)" for d in range(10)])
plt.show()
fig = viz.plot_vectors_as_images(theta_T, ncols=10, panel_size=1.25,
                                 titles=[f"{d} (LaPerm)" for d in range(10)])
plt.show()
'''),
        md(r"""
## Check: every vector still holds its initial values

After a sync each vector is a permutation of its own initial vector. Sorting both must give
identical arrays, and `laperm.profiles.is_permutation_of` checks every vector at once. The
assertion below stops the notebook if this ever fails.
"""),
        code(r'''
sorted_gap = np.abs(np.sort(theta_T, axis=0) - np.sort(theta0, axis=0)).max(axis=0)
check = pd.DataFrame({
    "unit": range(10),
    "max |sorted(theta_T) - sorted(theta_0)|": sorted_gap,
    "weights moved": profiles.moved_fraction(theta0, theta_T, per_vector=True),
})
display(check.style.hide(axis="index").format(precision=4))
same_multiset = profiles.is_permutation_of(theta0, theta_T)
assert same_multiset, "LaPerm changed a vector's values"
print(f"every vector is a permutation of its initial vector: {same_multiset}; "
      f"{profiles.moved_fraction(theta0, theta_T):.1%} of the weights changed place")
'''),
        code(r'''
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
viz.plot_weight_profiles(theta0, ax=axes[0], title="theta_0: 10 sorted vectors of 784")
viz.plot_weight_profiles(theta_T, ax=axes[1], baseline=theta0,
                         title="after LaPerm: the same sorted vectors")
fig.tight_layout()
plt.show()
'''),
        md(r"""
## Where do the values go? A permutation trace

`recorder.records` holds, for every sync, the rank of each position in each vector.
`plot_permutation_trace` follows eight values of unit 0 (the smallest, the largest and six
in between) from sync to sync. The y axis is the pixel position (0-783) each value
occupies. Values from the middle of the sorted vector are close to 0 and matter little;
small changes of Adam's weights reorder them, so they jump across the image from sync to
sync. The extreme values (the darkest and the yellow line) matter most and tend to settle
on a few pixels.
"""),
        code(r'''
# the kernel's ranks: [at theta_0, after sync 1, after sync 2, ...]
records = next(iter(recorder.records.values()))
fig, ax = plt.subplots(figsize=(9, 3.8))
viz.plot_permutation_trace(records, vector=0, n_weights=8, steps=recorder.steps, ax=ax,
                           title="unit 0: pixel position of 8 of its initial values")
fig.tight_layout()
plt.show()
print(f"{len(records)} records (theta_0 + {len(records) - 1} syncs) "
      f"at steps {recorder.steps[:5]} ...")
'''),
        md(r"""
## The reconnection as an animation

The same values, frame by frame: each frame shows the ten vectors right after a sync
(rebuilt from the recorded ranks with the sorted initial values). At most `max_frames`
syncs are shown, evenly spaced.
"""),
        code(r'''
n_frames = min(sec.max_frames, len(records))
pick = np.unique(np.linspace(0, len(records) - 1, n_frames).round().astype(int))
# small JPEG frames keep the page light
small = {"figure.dpi": 60, "savefig.dpi": 60, "animation.frame_format": "jpeg"}
with plt.rc_context(small):
    anim = viz.animate_reconnection(
        theta0, [records[i] for i in pick], image_shape=(28, 28),
        vector=list(range(10)), steps=[recorder.steps[i] for i in pick],
        panel_size=1.2, interval=300)
    html = viz.to_jshtml(anim)
print(f"{len(pick)} frames, {len(html) / 1e6:.2f} MB of HTML")
HTML(html)
'''),
        md(r"""
## Accuracy

LaPerm's accuracy is measured on **synchronised** weights (`optimizer.synchronised()`), a
true permutation of $\theta_0$. The inner optimizer's weights between syncs are not a
permutation; they are listed for reference. For comparison, the same model is trained with
plain Adam for the same number of steps.
"""),
        code(r'''
keras.utils.set_random_seed(sec.seed)
adam_model = models.f1(use_bias=False)
adam_model.compile(optimizer=keras.optimizers.Adam(sec.learning_rate),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
adam_model.fit(x_train, y_train, batch_size=128, epochs=sec.epochs, verbose=0)
adam_acc = adam_model.evaluate(x_test, y_test, verbose=0)[1]
adam_model.set_weights([theta0])             # the same model at theta_0
init_acc = adam_model.evaluate(x_test, y_test, verbose=0)[1]

results = pd.DataFrame([
    {"weights": "theta_0 (He-uniform)", "optimizer": "-", "test accuracy": init_acc},
    {"weights": "LaPerm, synchronised (a permutation of theta_0)",
     "optimizer": f"LaPerm(Adam), k={sec.sync_period}", "test accuracy": laperm_acc},
    {"weights": "LaPerm, inner weights since the last sync",
     "optimizer": f"LaPerm(Adam), k={sec.sync_period}", "test accuracy": inner_acc},
    {"weights": "plain Adam (values change freely)", "optimizer": "Adam",
     "test accuracy": adam_acc},
])
results["test images"] = len(x_test)
results["epochs"] = sec.epochs
display(results)
display(Markdown(
    f"For scale only: the paper's F1 reaches {PAPER_ACCURACY['f1']:.2%} (paper) with a "
    "different initialisation, one shared value 0.08 with 40% of the weights zeroed "
    "(section 5.5), so that number is not comparable to this He-uniform model."))
'''),
        md(r"""
A single linear layer cannot express much, so plain Adam's accuracy is the natural ceiling
here. The table shows how much of it LaPerm reaches without changing a single value of the
random initialisation; it only reconnected them. Section 5 runs the paper's larger
experiments.
"""),
        code("book.finish(sec);", "remove-cell"),
    ]
    return notebook(cells)


# ---------------------------------------------------------------------------
# Section 6: published checkpoints
# ---------------------------------------------------------------------------

NB06_NAMES = ("mnist_test_images", "cifar_test_images", "reference_dir")
NB06_PROFILES = """
{
    "smoke": dict(mnist_test_images=1000, cifar_test_images=200,
                  reference_dir=None),
    "cpu":   dict(mnist_test_images=10000, cifar_test_images=1000,
                  reference_dir=None),
    "paper": dict(mnist_test_images=10000, cifar_test_images=10000,
                  reference_dir=None),
}
"""


def nb06():
    cells = [
        md(r"""
# 6. The authors' published checkpoints

The authors released Keras weight files for seven of their trained networks
{cite}`qiu2020train`. We load each into the matching model from `laperm.models` (built
with the authors' layers in their order, since the files load by position; F1 and F2 with
zero biases, because the files store a bias per Dense layer) and measure test accuracy against the published numbers. We also check
what the files say about the training method: the share of zero weights must match the
pruning rate p, and the shared-value networks F1 and F2 must hold exactly two values,
$\{0, v\}$.

Test sets:

* **MNIST**: the official 10000 test images (exact).
* **CIFAR-10**: offline, only the **first 1000** exact test images are available (see the
  data README; the JPEG copy of the full set costs about 11 points and is never used).
  The published ResNet50 numbers are on all 10000 images. On 1000 images an accuracy near
  92% has a standard error of about 0.9 points, so differences of one or two points are
  within noise. Where no local `cifar10.npz` is found, `laperm.data.load` downloads the
  full set with `keras.datasets`; the page then uses up to `cifar_test_images` of it
  (all 10000 in the `paper` profile).
* Input: MNIST $x/255$; CIFAR-10 $x/255$ minus the per-pixel mean of the $/255$ training
  images (`make_preprocessor("pixel_mean", x_train)`), as in the authors' ResNet notebook.
"""),
        params(*NB06_NAMES),
        setup_cell("06_published_checkpoints", NB06_PROFILES, NB06_NAMES),
        code(r'''
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from laperm import data, models, pruning, viz
from laperm.experiment import PAPER_ACCURACY

viz.set_style()
pd.set_option("display.precision", 4)
pd.set_option("display.max_colwidth", 120)
''' + REFERENCE_DIR_HELPER, "remove-input"),
        code(r'''
resnet50 = lambda: models.resnet(depth=50)       # the CIFAR-10 ResNet, depth 6n+2
CHECKPOINTS = {
    "Conv7.h5":       ("conv7",        models.conv7,                 "mnist",   0),
    "F1.h5":          ("f1",           lambda: models.f1(use_bias=True), "mnist", 40),
    "F2.h5":          ("f2",           lambda: models.f2(use_bias=True), "mnist", 92),
    "resnet50.h5":    ("resnet50",     resnet50,                     "cifar10", 0),
    "resnet50_30.h5": ("resnet50_p30", resnet50,                     "cifar10", 30),
    "resnet50_50.h5": ("resnet50_p50", resnet50,                     "cifar10", 50),
    "resnet50_70.h5": ("resnet50_p70", resnet50,                     "cifar10", 70),
}   # file: (key of PAPER_ACCURACY, model factory, dataset, pruned p in %)
ref_dir = find_reference_dir(sec.reference_dir)
available = {}
if ref_dir is not None:
    available = {f: v for f, v in CHECKPOINTS.items() if (ref_dir / f).is_file()}
if not available:
    display(Markdown(
        "**The authors' checkpoints were not found** (looked at the `reference_dir` "
        "parameter, `$LAPERM_REFERENCE_DIR` and `../shared/reference/pretrained`). "
        "Download the `.h5` files from the `pretrained` folder of the authors' repository "
        f"{CHECKPOINTS_URL} (MIT license), put them in one folder and set "
        "`LAPERM_REFERENCE_DIR` to it. The rest of this page is skipped."))
else:
    print(f"checkpoints in {ref_dir}: {', '.join(available)}")
    missing = sorted(set(CHECKPOINTS) - set(available))
    if missing:
        print(f"missing (skipped): {', '.join(missing)}")
'''),
        code(r'''
def load_test_sets():
    sets = {}
    (_, _), (x, y) = data.load("mnist")
    n = min(sec.mnist_test_images, len(x))
    label = (f"MNIST, all {n} test images" if n == len(x)
             else f"MNIST, first {n} of the {len(x)} test images (subset)")
    sets["mnist"] = dict(x=x[:n] / 255.0, y=np.asarray(y[:n]).reshape(-1), label=label)

    (xc_train, _), (xc, yc) = data.load("cifar10")
    info = data.describe("cifar10")
    # x/255 minus the per-pixel mean of the /255 training images
    pre = data.make_preprocessor("pixel_mean", xc_train)
    n = min(sec.cifar_test_images, len(xc))
    label = f"CIFAR-10, first {n} of the 10000 test images"
    if n < len(xc):
        label += " (subset)"
    elif info.is_reduced_test_set:
        label += " (all exact ones available offline)"
    sets["cifar10"] = dict(x=np.asarray(pre(xc[:n])), y=np.asarray(yc[:n]).reshape(-1),
                           label=label)
    return sets


if available:
    test_sets = load_test_sets()
    for k, v in test_sets.items():
        print(f"{k}: {v['label']}")
'''),
        code(r'''
rows, loaded = [], {}
for fname, (key, factory, dataset, p) in available.items():
    t0 = time.perf_counter()
    keras.backend.clear_session()
    model = factory()
    model.load_weights(ref_dir / fname)
    ts = test_sets[dataset]
    pred = model.predict(ts["x"], batch_size=500, verbose=0)
    acc = float(np.mean(np.argmax(pred, axis=1) == ts["y"]))
    n = len(ts["y"])
    se = np.sqrt(acc * (1 - acc) / n)
    published = PAPER_ACCURACY[key]
    stats = pruning.kernel_stats(model)
    loaded[fname] = stats
    rows.append({"model": fname.removesuffix(".h5"), "dataset/test set": ts["label"],
                 "published": published, "measured": acc,
                 "difference": acc - published, "std. error": se, "n": n, "p (%)": p,
                 "seconds": time.perf_counter() - t0})
results = pd.DataFrame(rows) if rows else pd.DataFrame()
'''),
        code(r'''
def note(r):
    parts = []
    if r["dataset/test set"].startswith("CIFAR"):
        parts.append(f"published on 10000 test images, measured on {r['n']}: "
                     f"standard error {100 * r['std. error']:.1f} pt")
    elif r["n"] < 10000:
        parts.append(f"subset of {r['n']} test images: "
                     f"standard error {100 * r['std. error']:.1f} pt")
    gap = abs(r["difference"])
    side = "below" if r["difference"] < 0 else "above"
    if gap > 3 * max(r["std. error"], 1e-4):
        parts.append(f"the released file scores {r['measured']:.2%}, {100 * gap:.2f} pt "
                     f"{side} the published {r['published']:.2%} "
                     "(more than 3 standard errors)")
    elif r["n"] == 10000 and gap < 5e-5:
        parts.append("matches the published number exactly")
    else:
        parts.append("within 3 standard errors of the published number")
    if r["model"] == "F2":
        parts.append("file loads only into Dense layers with (all-zero) biases")
    return "; ".join(parts)


if len(results):
    results["note"] = results.apply(note, axis=1)
    shown = results[["model", "dataset/test set", "published", "measured", "difference",
                     "note"]]
    display(shown.style.format({"published": "{:.2%}", "measured": "{:.2%}",
                                "difference": lambda d: f"{100 * d:+.2f} pt"})
            .hide(axis="index"))
''', "hide-input"),
        md(r"""
"published" is the results table of the authors' README (`laperm.experiment.PAPER_ACCURACY`).
"measured" is this execution. The figure puts the two side by side, with an error bar of
plus or minus two standard errors on each measurement.
"""),
        code(r'''
if len(results):
    order = results.iloc[::-1].reset_index(drop=True)       # first model on top
    ypos = np.arange(len(order))
    colors = np.where(order["dataset/test set"].str.startswith("MNIST"), "C0", "C1")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.5 * len(order) + 1.6),
                                   sharey=True)
    ax1.scatter(100 * order["published"], ypos, marker="D", facecolors="none",
                edgecolors="k", s=45, label="published (paper)", zorder=3)
    ax1.errorbar(100 * order["measured"], ypos, xerr=200 * order["std. error"],
                 fmt="none", ecolor="0.4", capsize=3, zorder=2)
    ax1.scatter(100 * order["measured"], ypos, c=colors, s=35,
                label="measured here (±2 SE)", zorder=4)
    ax1.set_yticks(ypos, order["model"])
    ax1.set_xlabel("test accuracy (%)")
    ax1.set_title("accuracy")
    ax1.legend(loc="lower left", fontsize="x-small")
    diff = 100 * order["difference"]
    ax2.errorbar(diff, ypos, xerr=200 * order["std. error"], fmt="none", ecolor="0.4",
                 capsize=3)
    ax2.scatter(diff, ypos, c=colors, s=35, zorder=3)
    ax2.axvline(0, color="k", lw=1)
    ax2.set_xlabel("measured - published (points), ±2 standard errors")
    ax2.set_title("difference (blue: MNIST, orange: CIFAR-10)")
    fig.suptitle("authors' checkpoints: published vs measured")
    fig.tight_layout()
    plt.show()
''', "hide-input"),
        md(r"""
## What the files contain

**Pruning.** LaPerm only permutes, so a network pruned before training keeps its number of
zeros per weight vector. The share of zero weights over all kernels should therefore equal
the pruning rate p of the file name. The first layer keeps at least 80% of its weights
(section 5.4), which lowers the overall share slightly. F1 and F2 were not pruned in the
usual sense: their zeros come from the shared-value mask (section 5.5, p = 40% and 92%).
"""),
        code(r'''
if loaded:
    zero_rows = []
    for fname, stats in loaded.items():
        key, _, _, p = available[fname]
        rest = stats.iloc[1:]
        zero_rows.append({
            "model": fname.removesuffix(".h5"),
            "p (%)": p,
            "kernels": len(stats),
            "weights in kernels": int(stats["size"].sum()),
            "zero fraction (all kernels)": 1 - pruning.overall_kept_fraction(stats),
            "zero fraction (first kernel)": 1 - stats["kept_fraction"].iloc[0],
            "zero fraction (other kernels)":
                1 - rest["nonzero"].sum() / rest["size"].sum() if len(rest) else np.nan,
        })
    zeros = pd.DataFrame(zero_rows)
    zeros["difference to p (pt)"] = (100 * zeros["zero fraction (all kernels)"]
                                     - zeros["p (%)"])
    formats = {c: "{:.2%}" for c in zeros.columns if c.startswith("zero")}
    formats["difference to p (pt)"] = "{:+.2f}"
    display(zeros.style.format(formats, na_rep="-").hide(axis="index"))
''', "hide-input"),
        md(r"""
**Shared values.** F1 and F2 started from one value $v$ per network ($0.08$ and $0.03$)
under a random mask. Training by permutation cannot create new values, so every kernel of
the released files should hold exactly $\{0, v\}$.
"""),
        code(r'''
shared_rows = []
for fname in ("F1.h5", "F2.h5"):
    if fname not in available:
        continue
    v = pruning.PAPER_SHARED_VALUE[available[fname][0]]["value"]
    # read straight from the file, no model needed
    for _, r in pruning.h5_kernel_stats(ref_dir / fname).iterrows():
        values = r["values"] or ()
        shared_rows.append({
            "model": fname.removesuffix(".h5"),
            "layer (name in the file)": r["layer"],
            "shape": r["shape"],
            "distinct values": ", ".join(f"{x:.6g}" for x in values) or "more than 4",
            "exactly {0, v}": set(np.float32(values)) == {np.float32(0), np.float32(v)},
            "v (paper)": v,
            "non-zero fraction": r["kept_fraction"],
        })
if shared_rows:
    shared = pd.DataFrame(shared_rows)
    display(shared.style.format({"non-zero fraction": "{:.2%}"}).hide(axis="index"))
    assert shared["exactly {0, v}"].all(), "a shared-value kernel holds other values"
''', "hide-input"),
        md(r"""
## Summary
"""),
        code(r'''
if loaded:
    lines = [f"* All {len(loaded)} files found load into the models of `laperm.models` "
             "by layer order."]
    mn = results[results["dataset/test set"].str.startswith("MNIST")]
    full = mn[mn["n"] == 10000]
    if len(full):
        exact = ", ".join(full.loc[full["difference"].abs() < 5e-5, "model"]) or "none"
        off = ", ".join(f"{r.model} ({100 * r.difference:+.2f} pt)"
                        for r in full.itertuples() if abs(r.difference) >= 5e-5) or "none"
        lines.append("* MNIST, full official test set: equal to the published number: "
                     f"{exact}; different: {off}.")
    cf = results[results["dataset/test set"].str.startswith("CIFAR")]
    if len(cf):
        within = int((cf["difference"].abs() <= 2 * cf["std. error"]).sum())
        lines.append(f"* ResNet50 on {int(cf['n'].iloc[0])} CIFAR-10 test images (the paper "
                     f"used 10000): {within} of {len(cf)} files within 2 standard errors of "
                     "the published number. Differences of this size say little either way.")
    if "zeros" in globals():
        worst = zeros["difference to p (pt)"].abs().max()
        verdict = ("consistent with permutations of randomly pruned (or masked) initial "
                   "weights, as LaPerm requires" if worst < 1.0 else "see the table above")
        lines.append(f"* Zero fractions differ from the nominal p by at most {worst:.2f} "
                     f"points: {verdict}.")
    if shared_rows:
        ok = bool(shared["exactly {0, v}"].all())
        lines.append(f"* F1/F2 kernels hold exactly {{0, v}}: {ok}.")
    display(Markdown("\n".join(lines)))
''', "hide-input"),
        code("book.finish(sec);", "remove-cell"),
    ]
    return notebook(cells)


NOTEBOOKS = {
    "02_weight_profiles": nb02,
    "03_locations_vs_values": nb03,
    "04_laperm": nb04,
    "06_published_checkpoints": nb06,
}


def main(argv=None) -> int:
    return write_notebooks(NOTEBOOKS, argv or None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
