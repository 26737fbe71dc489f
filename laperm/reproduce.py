"""Run the paper's experiments at (or towards) paper scale into ``results/``.

Usage::

    python -m laperm.reproduce f1 f2 --seeds 0 1 2 --baseline
    python -m laperm.reproduce conv7 --epochs 45 --export

Each run writes
``results/<experiment>_<optimizer>_s<seed>[_e<epochs>][_f<percent>][_<input>][_bfloat16][_fused]/``
(config, history, result record; a checkpoint every epoch while it runs, so an
interrupted run resumes from the same command, also in a later session).  The
suffixes name a reduced run's epochs and share of the training set, and what
differs from the paper's settings (``--preprocessing``, ``--precision``,
``--kernels``), so two runs of one experiment never share a folder.
``--export`` copies a finished run's best synchronised weights to
``pretrained/`` with a manifest entry (``--export-dtype float16``: a half-size
copy, scored again as stored).

Exit codes: 0 every run finished; 2 a mistake to fix (a bad option value, an
unknown experiment, missing or damaged data, a run folder holding another
config, other data or another Keras backend, in use by another process or
holding a damaged file, a full disk or a folder that cannot be written), told
in one line on stderr; whatever was written before is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from laperm import data, experiment
from laperm.config import KERNELS
from laperm.data import PREPROCESSORS
from laperm.run.devices import DevicesError, split_cpu
from laperm.run.engine import ENGINES, EngineError, MATMUL_PRECISIONS, check_engine
from laperm.experiment import EXPERIMENTS, PRECISIONS, paper_config, run
from laperm.pretrained import EXPORT_DTYPES, export
from laperm.project import NoProjectError, project_root
from laperm.run.files import describe_os_error
from laperm.run.train import StepsPerExecutionError, TrainFractionError, snapshot_partial


def run_name(cfg) -> str:
    """The folder name of a run, e.g. ``conv2_laperm_s0``, ``conv4_adam_s0_e2_f25`` or
    ``conv2_laperm_s0_cifar_standardize`` (another input than the paper experiment's)."""
    name = f"{cfg.experiment}_{cfg.optimizer}_s{cfg.seed}"
    if cfg.epochs != cfg.paper_epochs:
        name += f"_e{cfg.epochs}"
    if cfg.train_fraction < 1:
        name += f"_f{100 * cfg.train_fraction:g}"
    paper = EXPERIMENTS.get(cfg.experiment)
    if paper is not None and cfg.preprocessing != paper.preprocessing:
        name += "_" + cfg.preprocessing
    if cfg.precision != "float32":
        name += "_" + cfg.precision.replace("mixed_", "")
    if cfg.kernels != "keras":
        name += "_" + cfg.kernels
    return name


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _whole_number(low: int, high: int | None, what: str):
    """An argparse type: a whole number in ``[low, high)``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} is a whole number >= {low}, got {text!r}") from None
        if value < low or (high is not None and value >= high):
            bound = f">= {low}" if high is None else f"from {low} to {high - 1}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1, None, "the number of epochs")
_device_count = _whole_number(1, None, "the number of devices")
_step_count = _whole_number(1, None, "a number of steps")
_seed = _whole_number(0, 2**32, "a seed")


def _fraction(text: str) -> float:
    """argparse type: a share in (0, 1] (``--train-fraction``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in (0, 1], e.g. 0.25, got {text!r}") from None
    if not 0 < value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (a share of the training set), "
                                         f"got {text}")
    return value


def _user_errors() -> tuple:
    """Exceptions of :func:`run` that are the user's to fix: one line, exit code 2."""
    # RunDirError: the folder holds another config, other data or another backend, is in
    # use by another process, or holds a damaged file.
    return (experiment.RunDirError, data.DataNotFoundError, data.DataFormatError, DevicesError,
            StepsPerExecutionError, EngineError, TrainFractionError)


def _user_error_line(exc: BaseException) -> str | None:
    """The one line of a mistake to fix (None: not one; let it raise)."""
    if isinstance(exc, OSError) and not isinstance(exc, _user_errors()):
        return describe_os_error(exc)
    return " ".join(str(exc).split()) or type(exc).__name__


def _remove_if_stray(out_dir: Path) -> None:
    """Remove a run folder this command created that holds nothing but ``config.json``."""
    if out_dir.is_dir() and {p.name for p in out_dir.iterdir()} <= {"config.json"}:
        for p in out_dir.iterdir():
            p.unlink()
        out_dir.rmdir()


def main(argv=None, prog: str = "python -m laperm.reproduce") -> int:
    parser = _Parser(prog=prog, description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--seeds", type=_seed, nargs="+", default=[0],
                        help="seeds (whole numbers >= 0; default: 0)")
    parser.add_argument("--baseline", action="store_true", help="also run the plain-Adam baseline")
    parser.add_argument("--only-baseline", action="store_true")
    parser.add_argument("--epochs", type=_positive_int,
                        help="override the number of epochs (>= 1; reduced run)")
    parser.add_argument("--train-fraction", type=_fraction,
                        help="reduced run: share of the training set, in (0, 1]")
    parser.add_argument("--preprocessing", choices=PREPROCESSORS, default=None,
                        help="input preprocessing (default: the paper experiment's; e.g. "
                             "'cifar_standardize', the input the authors' CIFAR-10 notebooks "
                             "meant, instead of the raw pixels they ran)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="Keras dtype policy (default float32; the variables stay float32)")
    parser.add_argument("--kernels", choices=KERNELS, default="keras",
                        help="'fused': BatchNorm, Adam and small convolutions as TensorFlow's "
                             "fused kernels (same math, fewer ops, faster on a CPU); default: "
                             "the Keras layers")
    parser.add_argument("--steps-per-execution", type=_step_count, default=1, metavar="N",
                        help="training steps per call of the compiled train function: the "
                             "same steps with fewer host round trips; it must divide an "
                             "epoch's steps (20 does for Conv7 and the CIFAR-10 runs; a value "
                             "that does not is told with the ones that do; default 1)")
    parser.add_argument("--engine", choices=ENGINES, default="fit",
                        help="'fit' (default): Keras's trainer, batches made on the host; "
                             "'device': data, augmentation, training and evaluation on the "
                             "device, an epoch in a few compiled calls (JAX backend only; "
                             "the same run folder and config hash)")
    parser.add_argument("--steps-per-call", type=_step_count, default=None, metavar="N",
                        help="--engine device: training steps per compiled call (default: "
                             "a whole epoch on a GPU, 1 on a CPU)")
    parser.add_argument("--matmul-precision", choices=MATMUL_PRECISIONS, default="highest",
                        help="--engine device: 'highest' (full float32, default) or 'default' "
                             "(TF32 on NVIDIA GPUs); recorded in the result")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the run folders (default: results/ of the checkout)")
    parser.add_argument("--export", action="store_true", help="export best weights to pretrained/")
    parser.add_argument("--export-dtype", choices=EXPORT_DTYPES, default="float32",
                        help="with --export: 'float16' stores a half-size copy, scored again "
                             "(for the large CIFAR-10 models; default: float32, as trained)")
    parser.add_argument("--snapshot", action="store_true",
                        help="do not train: record each run in progress as a reduced run of "
                             "the epochs it has done (<name>_e<epochs>; the run goes on)")
    parser.add_argument("--allow-other-backend", action="store_true",
                        help="resume or reuse a run folder written under another Keras backend")
    parser.add_argument("--devices", type=_device_count, default=None,
                        help="train data-parallel on this many devices (GPUs; on a machine "
                             "without GPUs, CPU devices, for testing); the batch stays the "
                             "paper's global batch (with --engine device: each batch is "
                             "sharded over them by JAX)")
    args = parser.parse_args(argv)
    if args.export_dtype != "float32" and not args.export:
        parser.error("--export-dtype applies to exported weights: add --export")
    if args.devices and args.devices > 1:
        split_cpu(args.devices)  # TensorFlow without GPUs: before its runtime starts
    unknown = [e for e in args.experiments if e not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; valid: {', '.join(EXPERIMENTS)}")
    if args.out is None:
        try:
            args.out = project_root() / "results"
        except NoProjectError as exc:
            parser.error(str(exc))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a file; name a folder (of the run folders)")
    user_errors = _user_errors()
    run_options = {"allow_other_backend": True} if args.allow_other_backend else {}
    if args.devices:
        run_options["devices"] = args.devices
    if args.steps_per_execution > 1:
        run_options["steps_per_execution"] = args.steps_per_execution
    if args.engine != "fit":
        try:
            check_engine(args.engine, args.precision, args.steps_per_call,
                         args.matmul_precision)
        except EngineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        run_options.update(engine=args.engine, steps_per_call=args.steps_per_call,
                           matmul_precision=args.matmul_precision)
    for name in args.experiments:
        for seed in args.seeds:
            changes = {"seed": seed, "precision": args.precision, "kernels": args.kernels}
            if args.epochs is not None:
                changes["epochs"] = args.epochs
            if args.train_fraction is not None:
                changes["train_fraction"] = args.train_fraction
            if args.preprocessing is not None:
                changes["preprocessing"] = args.preprocessing
            cfg = paper_config(name, **changes)
            configs = [] if args.only_baseline else [cfg]
            if args.baseline or args.only_baseline:
                configs.append(cfg.adam_baseline())
            for c in configs:
                out_dir = args.out / run_name(c)
                if args.snapshot:
                    try:
                        made = snapshot_partial(out_dir, args.out, run_name)
                    except (*user_errors, OSError) as exc:
                        line = _user_error_line(exc)
                        if line is None:
                            raise
                        print(f"error: {line}", file=sys.stderr)
                        return 2
                    print(f"== {run_name(c)}: " + (
                        f"recorded as {made[0]}" if made else "nothing in progress"), flush=True)
                    continue
                print(f"== {run_name(c)}: {c.scale_label} -> {out_dir}", flush=True)
                existed = out_dir.exists()
                try:
                    _, result = run(c, out_dir, **run_options)
                except (*user_errors, OSError) as exc:
                    line = _user_error_line(exc)
                    if line is None:
                        raise
                    if not existed:
                        _remove_if_stray(out_dir)
                    print(f"error: {line}", file=sys.stderr)
                    return 2
                print(
                    f"   best epoch {result['best_epoch']} val {result['best_val_accuracy']:.4f} "
                    f"test@best {result['test_accuracy_at_best_val']:.4f} "
                    f"final test {result['final_test_accuracy']:.4f} "
                    f"({result['wall_time_s']:.0f} s)", flush=True,
                )
                checkpoint = out_dir / "checkpoint.keras"
                if args.export:
                    entry = export(out_dir, run_name(c), dtype=args.export_dtype)
                    print(f"   exported to pretrained/{entry['file']} ({args.export_dtype}, "
                          f"test {entry['test_accuracy']:.4f})", flush=True)
                if checkpoint.exists():
                    checkpoint.unlink()  # finished: the result and best weights remain
    return 0


if __name__ == "__main__":
    sys.exit(main())
