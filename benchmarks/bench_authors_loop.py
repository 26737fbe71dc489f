"""Conv7 training throughput: the authors' ``LaPermTrainLoop`` against ours.

Usage: ``python benchmarks/bench_authors_loop.py [--steps 200] [--rounds 5] [--k 20]``.

Three ways to train Conv7 (Section 5.1) with LaPerm on MNIST, batch 50, the
notebook's k = 20, on the same machine, in alternating rounds so that they
share its noise:

* ``authors``: their ``LaPermTrainLoop.fit`` on a tf-keras Conv7, batches from
  their ``ImageDataGenerator`` (rotate 10 deg, zoom 0.1, shift 0.1, as in
  their Conv7 notebook) on /255 float arrays;
* ``authors loop, our batches``: the same loop fed by our pipeline's batches,
  to tell the loop's cost from the augmentation's;
* ``ours``: ``model.fit`` with ``laperm.LaPerm`` on
  ``laperm.data.make_dataset(..., augment="mnist", epochs=1)``, the default
  path (Keras's Adam, float32);
* ``ours, fused``: the same with :class:`laperm.method.fused.FusedAdam` (one
  ``ResourceApplyAdam`` per variable; ``ExperimentConfig(kernels="fused")``);
* ``ours, fused, bfloat16``: and the ``mixed_bfloat16`` dtype policy;
* ``ours, fused, bfloat16, steps_per_execution=k``: and Keras's
  ``compile(steps_per_execution=k)`` (k steps per call of the compiled
  function: the same steps, fewer Python round trips; not used by
  ``laperm.experiment.run``, whose progress and checks are per step).

The authors' code is loaded by :mod:`laperm.crosscheck` (from
``$LAPERM_AUTHORS_CODE`` or ``../shared/reference/authors-code``; tf-keras
needed).  Reported: median images/s per side, the ratio of medians to the
authors' and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import keras
import numpy as np
import pandas as pd
from common import save

import laperm
from laperm import crosscheck, data, models
from laperm.method.fused import make_adam


def authors_side(code, x01, y, batch, k, our_batches=None):
    """A function training one round with the authors' loop."""
    k2 = code.keras
    k2.utils.set_random_seed(0)
    model = crosscheck.authors_model("conv7", code)
    loop = code.LaPerm.LaPermTrainLoop(
        model=model, loss="sparse_categorical_crossentropy",
        inner_optimizer=k2.optimizers.Adam(), k_schedule=lambda epoch: k,
        lr_schedule=lambda epoch: 1e-3 * 0.95**epoch, skip_bias=False)
    if our_batches is None:
        datagen = k2.preprocessing.image.ImageDataGenerator(
            rotation_range=10, zoom_range=0.10, width_shift_range=0.1, height_shift_range=0.1)
        datagen.fit(x01)
    def one_round(n_images):
        flow = datagen if our_batches is None else crosscheck.training._FeedFlow(our_batches(), model)
        loop.fit(x01[:n_images], y[:n_images], batch_size=batch, epochs=1, datagen=flow,
                 validation_data=(None, None), validation_freq=None)
    return one_round


def our_side(x_u8, y, batch, k, kernels="keras", policy="float32", steps_per_execution=1):
    """A function training one round with model.fit and laperm.LaPerm."""
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = models.conv7()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(laperm.LaPerm(make_adam(1e-3, kernels), sync_period=k, skip_bias=False),
                  "sparse_categorical_crossentropy", steps_per_execution=steps_per_execution)

    def one_round(n_images):
        ds = data.make_dataset(x_u8[:n_images], y[:n_images], batch, preprocess="scale01",
                               augment="mnist", shuffle=True, seed=0, epochs=1)
        model.fit(ds, epochs=1, steps_per_epoch=n_images // batch, verbose=0, shuffle=False)
    return one_round


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--k", type=int, default=20, help="sync period (the notebook's 20)")
    parser.add_argument("--authors-code", help="the authors' repository")
    parser.add_argument("--note", default="", help="free text stored with the result")
    args = parser.parse_args()
    code = crosscheck.load_authors_code(args.authors_code)
    (x_train, y_train), _ = data.load("mnist")
    n = args.steps * args.batch
    x_u8, y = x_train[:n], y_train[:n].astype(np.int32)
    x01 = np.expand_dims(x_u8.astype("float32") / 255.0, -1)

    def our_batches():
        return data.make_dataset(x_u8, y, args.batch, preprocess="scale01", augment="mnist",
                                 shuffle=True, seed=0, epochs=1)

    sides = {
        "authors": authors_side(code, x01, y, args.batch, args.k),
        "authors loop, our batches": authors_side(code, x01, y, args.batch, args.k,
                                                  our_batches=our_batches),
        "ours": our_side(x_u8, y, args.batch, args.k),
        "ours, fused": our_side(x_u8, y, args.batch, args.k, "fused"),
        "ours, fused, bfloat16": our_side(x_u8, y, args.batch, args.k, "fused",
                                          "mixed_bfloat16"),
        f"ours, fused, bfloat16, steps_per_execution={args.k}": our_side(
            x_u8, y, args.batch, args.k, "fused", "mixed_bfloat16", steps_per_execution=args.k),
    }
    warm = max(10, 2 * args.k) * args.batch  # traces the k-step function too
    for name, one_round in sides.items():  # trace and build
        one_round(warm)
    rates = {name: [] for name in sides}
    for r in range(args.rounds):
        for name, one_round in sides.items():
            t = time.perf_counter()
            one_round(n)
            rates[name].append(n / (time.perf_counter() - t))
            print(f"round {r + 1}: {name}: {rates[name][-1]:.0f} images/s", flush=True)
    authors = statistics.median(rates["authors"])
    rows = [{"side": name, "images_per_s": statistics.median(v),
             "ratio_to_authors": statistics.median(v) / authors,
             "paired_ratio": statistics.median(o / a for o, a in zip(v, rates["authors"])),
             "rounds": ", ".join(f"{x:.0f}" for x in v)} for name, v in rates.items()]
    df = pd.DataFrame(rows)
    paired = statistics.median(o / a for o, a in zip(rates["ours"], rates["authors"]))
    fastest = max(rows[3:], key=lambda r: r["images_per_s"])
    load = os.getloadavg()
    md = (
        f"# Conv7 LaPerm training throughput: the authors' loop against ours\n\n"
        f"Batch {args.batch}, k = {args.k}, {args.steps} steps x {args.rounds} alternating "
        f"rounds, median images/s (backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPU cores).\n\n"
        + df.to_markdown(index=False, floatfmt=".2f") + "\n\n"
        f"Ratio of medians, ours (default path) / authors: "
        f"**{statistics.median(rates['ours']) / authors:.2f}** (median of the per-round "
        f"ratios: {paired:.2f}); fastest of ours ({fastest['side']}) / authors: "
        f"**{fastest['ratio_to_authors']:.2f}** (per-round: {fastest['paired_ratio']:.2f})."
        f"\n\nLoad average at the end: {load[0]:.1f} (1 min). {args.note}\n"
    )
    save("authors_loop", {"rates": rates, "rows": rows, "args": vars(args),
                          "ratio_of_medians": statistics.median(rates["ours"]) / authors,
                          "median_paired_ratio": paired,
                          "load_average": load, "authors_code": code.describe()}, md)


if __name__ == "__main__":
    main()
