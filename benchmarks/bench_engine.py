"""Training steps per second: the device engine (several steps per call) against ``fit``, under JAX.

Ratios side by side in one process, on one device: for each experiment, Keras's
``fit`` (host pipeline, one dispatched step at a time) and the device engine
(:mod:`laperm.run.engine`) with each ``--steps-per-call`` setting; also the engine's
host round trips per epoch and, from XLA's own count of a step's floating-point
operations, the achieved FLOP/s (``--peak-tflops`` adds the share of a peak).
The same script is what a GPU lease runs first, to choose the setting
(``--synthetic`` draws random images of the dataset's shape where the data is
not at hand: the speed does not depend on the pixels)::

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu LAPERM_DATA_DIR=../shared/data \\
        .venv-jax/bin/python benchmarks/bench_engine.py --experiments f1 conv7 conv2 \\
        --steps-per-call 1 10 epoch --steps 40

Prints one Markdown table and writes it with the raw numbers as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _splits(config, synthetic: bool):
    from laperm.run.train import load_splits

    if not synthetic:
        return load_splits(config)

    shape = (28, 28) if config.dataset == "mnist" else (32, 32, 3)
    rng = np.random.default_rng(0)
    n_train = int(round((60000 if config.dataset == "mnist" else 50000) - config.validation_size))

    def images(n):
        return rng.integers(0, 256, (n,) + shape, dtype=np.uint8)

    def labels(n):
        return rng.integers(0, 10, (n,), dtype=np.int64)

    class Info:
        test_note = "synthetic"

    return {"train": (images(n_train), labels(n_train)),
            "val": (images(config.validation_size), labels(config.validation_size)),
            "test": (images(1000), labels(1000)), "info": Info()}


def _model(config):
    from laperm.run.train import build_model, build_optimizer

    model, _ = build_model(config)
    model.compile(optimizer=build_optimizer(config), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def bench_device(config, splits, steps_per_call, steps: int, warmup_calls: int = 1) -> dict:
    """Steps/s of the device engine at one ``steps_per_call`` (compile timed apart)."""
    import jax

    from laperm.run.engine import DeviceTrainer
    from laperm.run.train import epoch_seed_states

    model = _model(config)
    spc = None if steps_per_call == "epoch" else int(steps_per_call)
    trainer = DeviceTrainer(config, model, splits, epoch_seed_states=epoch_seed_states,
                            steps_per_call=spc if spc is not None else 10**9)
    per_call = trainer.steps_per_call
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run_steps(0, 0, per_call * warmup_calls))
    compile_s = time.perf_counter() - t0
    measured = max(per_call, int(math.ceil(steps / per_call)) * per_call)
    measured = min(measured, trainer.full_steps - per_call * warmup_calls) or per_call
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run_steps(0, per_call * warmup_calls, measured))
    seconds = time.perf_counter() - t0
    flops = trainer.step_flops()
    return {"setting": f"device, {per_call} step(s)/call", "steps": measured,
            "steps_per_s": measured / seconds, "first_call_s": compile_s,
            "round_trips_per_epoch": math.ceil(trainer.full_steps / per_call)
            + (1 if trainer.remainder else 0),
            "step_gflop": flops / 1e9 if flops else None,
            "tflops": flops * measured / seconds / 1e12 if flops else None}


def bench_fit(config, splits, steps: int) -> dict:
    """Steps/s of ``model.fit`` on the host pipeline (what ``--engine fit`` trains with)."""
    from laperm.run.train import prepare_data

    model = _model(config)
    pipes = prepare_data(config, splits=splits)
    t0 = time.perf_counter()
    model.fit(pipes["train"], epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(pipes["train"], epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    return {"setting": "fit", "steps": steps, "steps_per_s": steps / seconds,
            "first_call_s": compile_s, "round_trips_per_epoch": None, "step_gflop": None,
            "tflops": None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=["f1", "conv7", "conv2"])
    parser.add_argument("--steps-per-call", nargs="+", default=["1", "10", "epoch"],
                        help="settings of the device engine: numbers, or 'epoch'")
    parser.add_argument("--steps", type=int, default=40, help="measured steps per setting")
    parser.add_argument("--no-fit", action="store_true", help="skip the fit path")
    parser.add_argument("--synthetic", action="store_true",
                        help="random images of the dataset's shape instead of the data")
    parser.add_argument("--matmul-precision", choices=("highest", "default"), default="highest")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak, for the share of it achieved")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    import jax
    import keras

    from laperm.paper import paper_config

    if keras.backend.backend() != "jax":
        print("error: run under KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    device = jax.devices()[0]
    rows = []
    with jax.default_matmul_precision(args.matmul_precision):
        for name in args.experiments:
            config = paper_config(name, epochs=1)
            splits = _splits(config, args.synthetic)
            results = [] if args.no_fit else [bench_fit(config, splits, args.steps)]
            for spc in args.steps_per_call:
                results.append(bench_device(config, splits, spc, args.steps))
            fit_rate = results[0]["steps_per_s"] if not args.no_fit else None
            for r in results:
                r.update(experiment=name,
                         vs_fit=(r["steps_per_s"] / fit_rate) if fit_rate else None)
                rows.append(r)
                print(json.dumps(r), flush=True)
    lines = [f"{device.platform}: {getattr(device, 'device_kind', '')}; jax {jax.__version__}, "
             f"keras {keras.__version__}; matmul precision {args.matmul_precision}; "
             f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}", "",
             "| experiment | setting | steps/s | x fit | first call s | calls/epoch | GFLOP/step "
             "| TFLOP/s |", "|---|---|---|---|---|---|---|---|"]

    def f(v, spec):
        return "" if v is None else format(v, spec)

    for r in rows:
        lines.append(f"| {r['experiment']} | {r['setting']} | {r['steps_per_s']:.1f} | "
                     f"{f(r['vs_fit'], '.2f')} | {r['first_call_s']:.1f} | "
                     f"{f(r['round_trips_per_epoch'], 'd')} | {f(r['step_gflop'], '.2f')} | "
                     f"{f(r['tflops'], '.2f')}"
                     + (f" ({100 * r['tflops'] / args.peak_tflops:.1f}% of peak)"
                        if r['tflops'] and args.peak_tflops else "") + " |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": lines[0], "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
