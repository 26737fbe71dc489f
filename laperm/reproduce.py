"""Run the paper's experiments at (or towards) paper scale into ``results/``.

Usage::

    python -m laperm.reproduce f1 f2 --seeds 0 1 2 --baseline
    python -m laperm.reproduce conv7 --epochs 45 --export

Each run writes ``results/<experiment>_<optimizer>_s<seed>[_e<epochs>][_f<percent>]/``
(config, history, result record; a checkpoint every epoch while it runs, so an
interrupted run resumes from the same command, also in a later session).  The
suffixes name a reduced run's epochs and share of the training set, so a
reduced run and the paper-scale run of one experiment never share a folder.
``--export`` copies a finished run's best synchronised weights to
``pretrained/`` with a manifest entry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from laperm.experiment import EXPERIMENTS, paper_config, run

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def run_name(cfg) -> str:
    """The folder name of a run, e.g. ``conv2_laperm_s0`` or ``conv4_adam_s0_e2_f25``."""
    name = f"{cfg.name.removesuffix('_adam')}_{cfg.optimizer}_s{cfg.seed}"
    if cfg.epochs != cfg.paper_epochs:
        name += f"_e{cfg.epochs}"
    if cfg.train_fraction < 1:
        name += f"_f{100 * cfg.train_fraction:g}"
    return name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m laperm.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--baseline", action="store_true", help="also run the plain-Adam baseline")
    parser.add_argument("--only-baseline", action="store_true")
    parser.add_argument("--epochs", type=int, help="override the number of epochs (reduced run)")
    parser.add_argument("--train-fraction", type=float, help="reduced run: share of training set")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--export", action="store_true", help="export best weights to pretrained/")
    args = parser.parse_args(argv)
    unknown = [e for e in args.experiments if e not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; valid: {', '.join(EXPERIMENTS)}")
    for name in args.experiments:
        for seed in args.seeds:
            changes = {"seed": seed}
            if args.epochs:
                changes["epochs"] = args.epochs
            if args.train_fraction:
                changes["train_fraction"] = args.train_fraction
            cfg = paper_config(name, **changes)
            configs = [] if args.only_baseline else [cfg]
            if args.baseline or args.only_baseline:
                configs.append(cfg.adam_baseline())
            for c in configs:
                out_dir = args.out / run_name(c)
                print(f"== {run_name(c)}: {c.scale_label} -> {out_dir}", flush=True)
                _, result = run(c, out_dir)
                print(
                    f"   best epoch {result['best_epoch']} val {result['best_val_accuracy']:.4f} "
                    f"test@best {result['test_accuracy_at_best_val']:.4f} "
                    f"final test {result['final_test_accuracy']:.4f} "
                    f"({result['wall_time_s']:.0f} s)", flush=True,
                )
                checkpoint = out_dir / "checkpoint.keras"
                if args.export:
                    from laperm.pretrained import export

                    export(out_dir, run_name(c))
                if checkpoint.exists():
                    checkpoint.unlink()  # finished: the result and best weights remain
    return 0


if __name__ == "__main__":
    sys.exit(main())
