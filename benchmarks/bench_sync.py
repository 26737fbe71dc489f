"""One LaPerm sync of each paper model: double argsort vs one argsort + scatter.

Usage: ``python benchmarks/bench_sync.py [--repeats 5]``.  Both versions are
compiled (``tf.function`` under TensorFlow, ``jax.jit`` under JAX) and timed
alternately in the same process; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import statistics

import keras
import pandas as pd

import laperm
from laperm import models
from laperm.method import ops as lops

from common import save, timed

MODELS = {  # model -> LaPerm preset (which variables are permuted)
    "f1": "f1", "f2": "f2", "conv7": "conv7", "conv2": "conv2", "conv4": "conv4",
    "conv13": "conv13", "resnet50": "resnet50",
}


def compile_fn(fn):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=False)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name, preset in MODELS.items():
        model = models.get(name)
        opt = laperm.LaPerm.from_paper(preset)
        opt.build(model.trainable_variables)
        values = [keras.ops.convert_to_tensor(v) for v in opt.permuted_variables]
        sorted0 = [keras.ops.convert_to_tensor(s) for s in opt.sorted_initial_values]

        def one_sort(vals, srt):
            return [lops.permute_to_ranks(v, s) for v, s in zip(vals, srt)]

        def two_sorts(vals, srt):
            return [lops.permute_to_ranks_double_argsort(v, s) for v, s in zip(vals, srt)]

        f1, f2 = compile_fn(one_sort), compile_fn(two_sorts)

        def run(f):
            out = f(values, sorted0)
            keras.ops.convert_to_numpy(out[-1])  # wait for the result

        t_one, t_two = [], []
        for _ in range(args.repeats):  # alternate to share the machine's noise
            t_one += timed(lambda: run(f1), 1)
            t_two += timed(lambda: run(f2), 1)
        n = sum(int(keras.ops.size(v)) for v in values)
        rows.append({
            "model": name, "permuted_weights": n,
            "double_argsort_ms": 1e3 * statistics.median(t_two),
            "argsort_scatter_ms": 1e3 * statistics.median(t_one),
        })
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["speedup"] = df["double_argsort_ms"] / df["argsort_scatter_ms"]
    md = (
        f"# One sync per model (backend {keras.backend.backend()}, median of {args.repeats})\n\n"
        + df.to_markdown(index=False, floatfmt=".2f") + "\n"
    )
    save(f"sync_{keras.backend.backend()}", {"rows": rows}, md)


if __name__ == "__main__":
    main()
