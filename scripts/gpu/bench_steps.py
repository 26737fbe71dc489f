#!/usr/bin/env python3
"""Training steps per second of the paper's CIFAR models, as ``laperm.reproduce`` trains them.

For each experiment and optimizer: the model, optimizer and input pipeline of
``laperm.run.train`` at the paper's settings (batch 50, the augmentation on the
host), then

* ``pipeline``: batches per second of the training pipeline alone (the host's
  share of a step: gather, preprocess, augment);
* ``fit``: training steps per second of ``model.fit`` on that pipeline, after
  ``--warmup`` steps (the compile); the per-epoch evaluation and BatchNorm
  re-estimation are not in it, nor LaPerm's sync (every 1000 steps).

Run by hand (never in the tests), e.g. on a CPU under JAX::

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu LAPERM_DATA_DIR=../shared/data \\
        .venv-jax/bin/python scripts/gpu/bench_steps.py --steps 40 --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def bench(experiment: str, optimizer: str, steps: int, warmup: int) -> dict:
    import keras

    from laperm.paper import paper_config
    from laperm.run.train import build_model, build_optimizer, load_splits, prepare_data

    cfg = paper_config(experiment)
    if optimizer == "adam":
        cfg = cfg.adam_baseline()
    splits = load_splits(cfg)
    pipes = prepare_data(cfg, splits=splits)
    train = pipes["train"]
    for i in range(2):
        train[i]
    t = time.perf_counter()
    for i in range(2, 2 + steps):
        train[i]
    pipeline = steps / (time.perf_counter() - t)

    model, _ = build_model(cfg)
    model.compile(optimizer=build_optimizer(cfg), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stamps: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    model.fit(train, epochs=1, steps_per_epoch=warmup + steps, verbose=0, shuffle=False,
              callbacks=[Timer()])
    fit = steps / (stamps[-1] - stamps[warmup - 1])
    return {"experiment": experiment, "optimizer": optimizer, "steps": steps, "warmup": warmup,
            "pipeline_batches_per_s": pipeline, "fit_steps_per_s": fit,
            "fit_images_per_s": fit * cfg.batch_size,
            "first_steps_s": stamps[warmup - 1] - t0, "params": model.count_params(),
            "steps_per_epoch": pipes["steps_per_epoch"], "paper_epochs": cfg.paper_epochs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", nargs="+", default=["conv2", "conv4", "conv13"])
    p.add_argument("--optimizers", nargs="+", default=["laperm"], choices=["laperm", "adam"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import jax
    import keras

    rows = []
    for e in args.experiments:
        for o in args.optimizers:
            r = bench(e, o, args.steps, args.warmup)
            rows.append(r)
            print(f"{e:7s} {o:6s} pipeline {r['pipeline_batches_per_s']:7.1f} batches/s  fit "
                  f"{r['fit_steps_per_s']:6.2f} steps/s ({r['fit_images_per_s']:.0f} images/s); "
                  f"first {args.warmup} steps {r['first_steps_s']:.1f} s", flush=True)
    env = {"backend": keras.backend.backend(), "keras": keras.__version__, "jax": jax.__version__,
           "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "load_average": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "runs": rows}, f, indent=1)
    print(json.dumps(env))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
