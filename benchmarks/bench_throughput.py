"""Training throughput of LaPerm relative to plain Adam on Conv7 (MNIST shapes).

Usage: ``python benchmarks/bench_throughput.py [--steps 200] [--rounds 3]``.
Three optimizers (Adam, LaPerm k=20, LaPerm k=1000) train the same Conv7 with
``model.fit`` on in-memory batches; rounds alternate between them so that they
share the machine's noise.  Reported: images/s and the ratio LaPerm / Adam.
Targets (issue): >= 0.85 at k = 20 and >= 0.97 at k = 1000.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import pandas as pd

import laperm
from laperm import models

from common import save


def make(kind):
    keras.utils.set_random_seed(0)
    model = models.conv7()
    adam = keras.optimizers.Adam(1e-3)
    opt = adam if kind == "adam" else laperm.LaPerm(adam, sync_period=int(kind.split("=")[1]),
                                                    skip_bias=False)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.steps * args.batch
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    kinds = ["adam", "laperm k=20", "laperm k=1000"]
    built = {k: make(k) for k in kinds}
    for model in built.values():  # warm up: trace and build
        model.fit(x[: 4 * args.batch], y[: 4 * args.batch], batch_size=args.batch, verbose=0)
    rates = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            t = time.perf_counter()
            built[kind].fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
            rates[kind].append(n / (time.perf_counter() - t))
            print(kind, f"{rates[kind][-1]:.0f} images/s", flush=True)
    adam = statistics.median(rates["adam"])
    rows = [
        {"optimizer": k, "images_per_s": statistics.median(v),
         "ratio_to_adam": statistics.median(v) / adam}
        for k, v in rates.items()
    ]
    df = pd.DataFrame(rows)
    md = (
        f"# Conv7 training throughput (backend {keras.backend.backend()}, batch {args.batch}, "
        f"{args.steps} steps x {args.rounds} alternating rounds, median)\n\n"
        + df.to_markdown(index=False, floatfmt=".3f") + "\n"
    )
    save(f"throughput_{keras.backend.backend()}", {"rates": rates, "rows": rows}, md)


if __name__ == "__main__":
    main()
