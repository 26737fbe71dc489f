"""CIFAR-10 LaPerm training throughput: input pipeline, kernels and precision, side by side.

Usage: ``python benchmarks/bench_cifar.py [--models conv2 conv4 conv13 resnet50]
[--steps 40] [--rounds 3]``.

For each model, five ways of training it with LaPerm at the paper's k, the
paper's augmentation and batch 50 (``model.fit`` on real CIFAR-10 images):

* ``before``: the path of the release before this benchmark (seeded
  augmentation mapped sequentially, Keras kernels, float32): the reference;
* ``default``: today's default (the epoch-indexed pipeline: stateless
  augmentation seeds, a parallel map; Keras kernels; float32);
* ``bfloat16``: the same, ``mixed_bfloat16`` dtype policy (AMX on this CPU);
* ``fused``: BatchNorm and Adam as TensorFlow's fused kernels
  (``ExperimentConfig(kernels="fused")``, :mod:`laperm.method.fused`), float32;
* ``fused_bfloat16``: fused kernels and ``mixed_bfloat16``.

Rounds alternate between the ways, so that they share the machine's noise;
reported are median images/s, ratios to ``before`` and to ``default``, the
achieved GFLOP/s (analytic multiply-adds of Conv2D/Dense layers, x3 for a
training step) against this machine's matmul peak measured in the same run,
and an op-level profile of one step of ``default`` and ``fused_bfloat16``
(TensorFlow's profiler: self time per op type, summed over threads).
Results: ``benchmarks/results/cifar_<backend>.{md,json}``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import tempfile
import time

import keras
import pandas as pd
from common import save

import laperm
from laperm import data, models
from laperm.method.fused import fuse_model, make_adam
from laperm.paper import EXPERIMENTS


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
        mm = tf.function(lambda a=a: tf.matmul(a, a))
        x = tf.random.normal((50, 32, 32, 64), dtype=dtype)
        k = tf.random.normal((3, 3, 64, 64), dtype=dtype)
        conv = tf.function(lambda x=x, k=k: tf.nn.conv2d(x, k, 1, "SAME"))
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


#: way -> (pipeline, kernels, dtype policy)
WAYS = {
    "before": ("before", "keras", "float32"),
    "default": ("epochs", "keras", "float32"),
    "bfloat16": ("epochs", "keras", "mixed_bfloat16"),
    "fused": ("epochs", "fused", "float32"),
    "fused_bfloat16": ("epochs", "fused", "mixed_bfloat16"),
}

#: Steps per timed round, as a share of ``--steps`` (Conv13 and ResNet50 are slow).
STEP_SHARE = {"conv13": 0.3, "resnet50": 0.5}


def build(name: str, way: str):
    cfg = EXPERIMENTS[name]
    _, kernels, policy = WAYS[way]
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = models.get(cfg.model)
        if kernels == "fused":
            model = fuse_model(model)
        model.compile(laperm.LaPerm(make_adam(1e-3, kernels), sync_period=cfg.sync_period),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def op_profile(model, pipe, steps: int) -> pd.Series:
    """Milliseconds of self time per op type in one training step (TensorFlow's profiler)."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(pipe.take(steps), epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        planes = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        table, ok = plugin.xspace_to_tools_data(planes, "framework_op_stats", {})
    if not ok:
        return pd.Series(dtype=float)
    table = json.loads(table)[0]
    columns = [c["id"] for c in table["cols"]]
    ops = pd.DataFrame([[c.get("v") if c else None for c in r["c"]] for r in table["rows"]],
                       columns=columns)
    ops = ops[ops["type"] != "IDLE"]
    return ops.groupby("type")["total_self_time"].sum().sort_values(ascending=False) / steps / 1e3


def pipeline(name: str, way: str, x, y, steps: int):
    cfg = EXPERIMENTS[name]
    pre = data.make_preprocessor(cfg.preprocessing, x)
    n = steps * cfg.batch_size
    if WAYS[way][0] == "before":  # one pass per iteration, stateful seeded augmentation
        return data.make_dataset(x[:n], y[:n], cfg.batch_size, preprocess=pre,
                                 augment=cfg.augmentation, shuffle=True, seed=0)
    return data.make_dataset(x[:n], y[:n], cfg.batch_size, preprocess=pre,
                             augment=cfg.augmentation, shuffle=True, seed=0, epochs=1)


def measure(name: str, x, y, steps: int, rounds: int) -> dict:
    """Alternating timed rounds of every way of one model; images/s per round."""
    built = {w: build(name, w) for w in WAYS}
    pipes = {w: pipeline(name, w, x, y, steps) for w in WAYS}
    batch = EXPERIMENTS[name].batch_size
    for w in WAYS:  # warm up: trace and build
        built[w].fit(pipes[w], epochs=1, verbose=0)
    rates = {w: [] for w in WAYS}
    for _ in range(rounds):
        for w in WAYS:
            t = time.perf_counter()
            built[w].fit(pipes[w], epochs=1, verbose=0)
            rates[w].append(steps * batch / (time.perf_counter() - t))
            print(name, w, f"{rates[w][-1]:.0f} images/s", flush=True)
    profile = {w: op_profile(built[w], pipes[w], min(steps, 10))
               for w in ("default", "fused_bfloat16")}
    return {"rates": rates, "profile_ms": {w: p.to_dict() for w, p in profile.items()},
            "train_flops_per_image": 3 * forward_flops(built["default"]), "steps": steps}


def profile_table(raw: dict, top: int = 8) -> pd.DataFrame:
    """The op types that take the most time in a step of ``default``, beside ``fused_bfloat16``."""
    rows = []
    for name, r in raw.items():
        default, fast = (pd.Series(r["profile_ms"][w], dtype=float)
                         for w in ("default", "fused_bfloat16"))
        for op in default.index[:top]:
            rows.append({"model": name, "op type": op, "default_ms": default[op],
                         "fused_bfloat16_ms": fast.get(op, 0.0)})
        rows.append({"model": name, "op type": "(all ops)", "default_ms": default.sum(),
                     "fused_bfloat16_ms": fast.sum()})
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["conv2", "conv4", "conv13", "resnet50"])
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round "
                        "(Conv13: 30%%, ResNet50: 50%% of it)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    (x, y), _ = data.load("cifar10")
    peak = peaks()
    print({k: round(v) for k, v in peak.items()}, flush=True)
    rows, raw = [], {}
    for name in args.models:
        steps = max(4, round(args.steps * STEP_SHARE.get(name, 1.0)))
        raw[name] = measure(name, x, y, steps, args.rounds)
        rates, flops = raw[name]["rates"], raw[name]["train_flops_per_image"]
        before, default = (statistics.median(rates[w]) for w in ("before", "default"))
        for w in WAYS:
            rate = statistics.median(rates[w])
            key = "matmul_bfloat16" if WAYS[w][2] == "mixed_bfloat16" else "matmul_float32"
            rows.append({"model": name, "way": w, "images_per_s": rate,
                         "ratio_to_before": rate / before, "ratio_to_default": rate / default,
                         "gflop_per_s": rate * flops / 1e9,
                         "share_of_matmul_peak": rate * flops / 1e9 / peak[key]})
    df = pd.DataFrame(rows)
    load = os.getloadavg()[0]
    steps = ", ".join(f"{m} {r['steps']}" for m, r in raw.items())
    md = (
        f"# CIFAR-10 LaPerm training throughput (backend {keras.backend.backend()}, batch 50, "
        f"{args.rounds} alternating rounds, median)\n\n"
        f"Steps per round: {steps}. `before` is the path of the previous release (the "
        "reference), `default` today's default path.\n\n"
        + df.to_markdown(index=False, floatfmt=".2f")
        + "\n\nPeaks measured in the same run (GFLOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in peak.items())
        + ".\n\nWhere a step's time goes: self time per op type in ms per step, summed over "
        "threads (TensorFlow's profiler; the top op types of `default`):\n\n"
        + profile_table(raw).to_markdown(index=False, floatfmt=".1f")
        + f"\n\nLoad average at the end: {load:.1f} (1 min).\n"
    )
    save(f"cifar_{keras.backend.backend()}", {"rows": rows, "raw": raw, "peaks": peak}, md)


if __name__ == "__main__":
    main()
