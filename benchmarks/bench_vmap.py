"""Several runs in one program (``jax.vmap``) against one run alone: why runs share a GPU as processes.

The device engine's step (:mod:`laperm.run.engine`) is vmapped over R stacked run
states (R seeds of one experiment) and timed against the same step of one run,
in one process, side by side.  It also counts, in the lowered programs, the
conditionals and sorts: LaPerm's sync sits in a ``lax.cond`` on the run's own
step counter; under ``vmap`` that predicate is per run, so the cond becomes a
select that computes both branches, and the sort of every weight vector runs at
every step (issue 23's trap)::

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu LAPERM_DATA_DIR=../shared/data \\
        .venv-jax/bin/python benchmarks/bench_vmap.py --experiment f1 --runs 4 --steps 100

Prints one line per optimizer: steps/s of one run, of R vmapped runs (run-steps/s),
their ratio, and the conditionals and sorts of both programs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def measure(name: str, optimizer: str, runs: int, steps: int, sync_period=None) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from laperm.paper import paper_config
    from laperm.run.engine import DeviceTrainer
    from laperm.run.train import build_model, build_optimizer, epoch_seed_states, load_splits

    trainers = []
    for seed in range(runs):
        changes = {"seed": seed, "optimizer": optimizer, "augmentation": None}
        if sync_period is not None:
            changes["sync_period"] = sync_period
        cfg = paper_config(name, **changes)
        model, _ = build_model(cfg)
        model.compile(optimizer=build_optimizer(cfg), loss="sparse_categorical_crossentropy")
        trainers.append(DeviceTrainer(cfg, model, load_splits(cfg),
                                      epoch_seed_states=epoch_seed_states, steps_per_call=1))
    first = trainers[0]
    batch = first.config.batch_size

    def step(tv, ntv, ov, key, order, i):
        state = (tv, ntv, ov, jnp.zeros(2, jnp.float32))
        (tv, ntv, ov, _), _ = first._train_step(state, first.train_data, key, order, i, batch)
        return tv, ntv, ov

    orders = jnp.stack([jnp.asarray(np.random.default_rng(s).permutation(first.n_train)
                                    .astype(np.int32)) for s in range(runs)])
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(runs)])

    def rate(fn, state, key, order):
        for i in range(3):
            state = fn(*state, key, order, jnp.int32(i))
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        for i in range(steps):
            state = fn(*state, key, order, jnp.int32(i))
        jax.block_until_ready(state)
        return steps / (time.perf_counter() - t0)

    def counts(fn, state, key, order):
        text = fn.lower(*state, key, order, jnp.int32(0)).as_text()
        return (text.count("stablehlo.case") + text.count("stablehlo.if"),
                text.count("stablehlo.sort"))

    single = jax.jit(step)
    together = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, 0, None)))
    stacked = [jax.tree.map(lambda *xs: jnp.stack(xs), *[t.state[j] for t in trainers])
               for j in range(3)]
    one = rate(single, first.state, keys[0], orders[0])
    many = rate(together, stacked, keys, orders)
    return {"experiment": name, "optimizer": optimizer, "runs": runs, "one_run_steps_per_s": one,
            "vmapped_run_steps_per_s": many * runs, "ratio": many * runs / one,
            "single_program": counts(single, first.state, keys[0], orders[0]),
            "vmapped_program": counts(together, stacked, keys, orders)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="f1")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sync-period", type=int, default=1000,
                        help="k (large: no sync inside the measured steps)")
    args = parser.parse_args(argv)
    for optimizer in ("adam", "laperm"):
        r = measure(args.experiment, optimizer, args.runs, args.steps, args.sync_period)
        print(f"{r['experiment']} {optimizer}: one run {r['one_run_steps_per_s']:.0f} steps/s; "
              f"{r['runs']} vmapped {r['vmapped_run_steps_per_s']:.0f} run-steps/s "
              f"({r['ratio']:.2f}x); conditionals and sorts: one run "
              f"{r['single_program'][0]} / {r['single_program'][1]}, vmapped "
              f"{r['vmapped_program'][0]} / {r['vmapped_program'][1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
