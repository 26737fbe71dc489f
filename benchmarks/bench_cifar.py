"""CIFAR-10 LaPerm training throughput: input pipelines and precision, side by side.

Usage: ``python benchmarks/bench_cifar.py [--models conv2 conv4] [--steps 60] [--rounds 3]``.

For each model, three ways of training it with LaPerm at the paper's k, the
paper's augmentation and batch 50 (``model.fit`` on real CIFAR-10 images):

* ``before``: the pipeline of the previous release (seeded augmentation
  mapped sequentially, so that it was reproducible), float32;
* ``float32``: the epoch-indexed pipeline (stateless augmentation seeds, a
  parallel map), float32;
* ``mixed_bfloat16``: the same pipeline, ``mixed_bfloat16`` policy (AMX).

Rounds alternate between the three, so that they share the machine's noise;
reported are median images/s, ratios to ``before``, the achieved GFLOP/s
(analytic multiply-adds of Conv2D/Dense layers, x3 for a training step)
against this machine's matmul and 3x3-convolution peaks measured in the same
run, and a coarse profile of one step (input pipeline alone, forward alone,
whole step).  Results: ``benchmarks/results/cifar_<backend>.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import keras
import numpy as np
import pandas as pd

import laperm
from laperm import data, models
from laperm.paper import EXPERIMENTS

from common import save

WAYS = ("before", "float32", "mixed_bfloat16")


def forward_flops(model) -> float:
    """Multiply-adds x 2 of one image's forward pass through Conv2D and Dense layers."""
    total = 0.0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw, cin, _ = layer.kernel.shape
            total += 2.0 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += 2.0 * cin * cout
    return total


def peaks(repeats: int = 5) -> dict:
    """GFLOP/s of a 2048^2 matmul and a 3x3 conv (batch 50, 32x32x64), float32 and bfloat16."""
    import tensorflow as tf

    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((2048, 2048), dtype=dtype)
        mm = tf.function(lambda: tf.matmul(a, a))
        x = tf.random.normal((50, 32, 32, 64), dtype=dtype)
        k = tf.random.normal((3, 3, 64, 64), dtype=dtype)
        conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
        for name, fn, flops in (("matmul", mm, 2 * 2048**3),
                                ("conv3x3", conv, 2 * 50 * 32 * 32 * 9 * 64 * 64)):
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn().numpy()
                times.append(time.perf_counter() - t)
            out[f"{name}_{dtype}"] = flops / statistics.median(times) / 1e9
    return out


def build(name: str, way: str):
    cfg = EXPERIMENTS[name]
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if way == "mixed_bfloat16"
                                            else "float32")
    try:
        keras.utils.set_random_seed(0)
        model = models.get(cfg.model)
        model.compile(laperm.LaPerm(keras.optimizers.Adam(1e-3), sync_period=cfg.sync_period),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def pipeline(name: str, way: str, x, y, steps: int, rounds: int):
    cfg = EXPERIMENTS[name]
    pre = data.make_preprocessor(cfg.preprocessing, x)
    n = steps * cfg.batch_size
    if way == "before":  # one pass per iteration, stateful seeded augmentation, sequential
        return data.make_dataset(x[:n], y[:n], cfg.batch_size, preprocess=pre,
                                 augment=cfg.augmentation, shuffle=True, seed=0)
    return data.make_dataset(x[:n], y[:n], cfg.batch_size, preprocess=pre,
                             augment=cfg.augmentation, shuffle=True, seed=0, epochs=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["conv2", "conv4", "conv13", "resnet50"])
    parser.add_argument("--steps", type=int, default=60, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    (x, y), _ = data.load("cifar10")
    peak = peaks()
    print({k: round(v) for k, v in peak.items()}, flush=True)
    rows, raw = [], {}
    for name in args.models:
        built = {w: build(name, w) for w in WAYS}
        pipes = {w: pipeline(name, w, x, y, args.steps, args.rounds) for w in WAYS}
        batch = EXPERIMENTS[name].batch_size
        for w in WAYS:  # warm up: trace and build
            built[w].fit(pipes[w], epochs=1, verbose=0)
        rates = {w: [] for w in WAYS}
        for _ in range(args.rounds):
            for w in WAYS:
                t = time.perf_counter()
                built[w].fit(pipes[w], epochs=1, verbose=0)
                rates[w].append(args.steps * batch / (time.perf_counter() - t))
                print(name, w, f"{rates[w][-1]:.0f} images/s", flush=True)
        # A coarse profile of one step of the float32 pipeline and model.
        it = iter(pipeline(name, "float32", x, y, args.steps, 1))
        next(it)  # built and warm
        t = time.perf_counter()
        for _ in range(args.steps - 1):
            next(it)
        input_s = (time.perf_counter() - t) / (args.steps - 1)
        probe = np.asarray(x[:batch], "float32")
        forward = keras.Model.predict_on_batch
        forward(built["float32"], probe)
        t = time.perf_counter()
        for _ in range(10):
            forward(built["float32"], probe)
        forward_s = (time.perf_counter() - t) / 10
        flops = 3 * forward_flops(built["float32"])
        before = statistics.median(rates["before"])
        for w in WAYS:
            rate = statistics.median(rates[w])
            key = "matmul_bfloat16" if w == "mixed_bfloat16" else "matmul_float32"
            rows.append({"model": name, "way": w, "images_per_s": rate,
                         "ratio_to_before": rate / before, "gflop_per_s": rate * flops / 1e9,
                         "share_of_matmul_peak": rate * flops / 1e9 / peak[key]})
        step_s = batch / statistics.median(rates["float32"])
        raw[name] = {"rates": rates, "train_flops_per_image": flops,
                     "profile_float32_s": {"input_pipeline_per_batch": input_s,
                                           "forward_per_batch": forward_s,
                                           "train_step": step_s}}
    df = pd.DataFrame(rows)
    load = os.getloadavg()[0]
    profile = pd.DataFrame([{"model": m, **{k: 1000 * v for k, v in r["profile_float32_s"].items()}}
                            for m, r in raw.items()])
    md = (
        f"# CIFAR-10 LaPerm training throughput (backend {keras.backend.backend()}, batch 50, "
        f"{args.steps} steps x {args.rounds} alternating rounds, median)\n\n"
        + df.to_markdown(index=False, floatfmt=".2f")
        + "\n\nPeaks measured in the same run (GFLOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in peak.items())
        + ".\n\nOne step of the float32 path, in ms (input pipeline alone, forward pass alone, "
        "whole training step):\n\n" + profile.to_markdown(index=False, floatfmt=".1f")
        + f"\n\nLoad average at the end: {load:.1f} (1 min).\n"
    )
    save(f"cifar_{keras.backend.backend()}", {"rows": rows, "raw": raw, "peaks": peak}, md)


if __name__ == "__main__":
    main()
