"""Run one experiment of the paper, reproducibly (Section 5).

An :class:`ExperimentConfig` is a frozen dataclass holding everything that
defines a run: model, data, preprocessing and augmentation, the inner Adam and
its learning-rate schedule, LaPerm's k and which variables it permutes (or a
plain-Adam baseline), pruning or shared-value initialisation, the seed and the
scale knobs of reduced runs.  :func:`run` trains it and returns a per-epoch
history DataFrame and a JSON-able result record.

Honesty rules built in:

* the "best" epoch is chosen on a held-out validation split of the
  training set, never on the test set as the authors did (the test accuracy
  of every epoch is still logged, so the effect of choosing on test can be
  measured);
* every accuracy of a LaPerm run is measured on *synchronised* weights (a
  permutation of theta_0), through ``LaPerm.synchronised()``; the authors'
  CIFAR notebooks evaluated the unsynchronised ones, also logged.

Runs survive being killed: after every epoch the history and then the model
(with the optimizer state and sorted theta_0) are written atomically to
``out_dir``; calling :func:`run` again with the same config, in any process,
continues from the last checkpoint and gives the history of the uninterrupted
run.  A folder made on other data, or with another Keras backend, is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from laperm.pruning import SHARED_MASKS

#: Learning-rate schedules of Section 5, as functions of the epoch.
LR_SCHEDULES = {
    "exp95": "lr0 * 0.95**epoch (Conv7, F1, F2)",
    "step06": "lr0 * 0.6**floor(epoch/10) (Conv2/4/13)",
    "resnet": "lr0, x0.1 after epoch 80, x1e-2 after 120, x1e-3 after 160, x5e-4 after 180",
    "constant": "lr0",
}


def learning_rate_at(schedule: str, lr0: float, epoch: int) -> float:
    """The learning rate of a named schedule at ``epoch`` (counted from 0)."""
    if schedule == "exp95":
        return lr0 * 0.95**epoch
    if schedule == "step06":
        return lr0 * 0.6 ** (epoch // 10)
    if schedule == "resnet":
        factor = 1.0
        for boundary, f in ((180, 5e-4), (160, 1e-3), (120, 1e-2), (80, 1e-1)):
            if epoch > boundary:
                factor = f
                break
        return lr0 * factor
    if schedule == "constant":
        return lr0
    raise ValueError(
        f"Unknown learning-rate schedule {schedule!r}; valid: {', '.join(LR_SCHEDULES)}."
    )


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one training run.

    Attributes:
        name: experiment name (a key of :data:`EXPERIMENTS` or your own).
        model: a :mod:`laperm.models` name (``"conv7"``, ``"resnet50"`` ...).
        dataset: ``"mnist"`` or ``"cifar10"``.
        optimizer: ``"laperm"`` or ``"adam"`` (the plain-Adam baseline).
        batch_size: mini-batch size.
        epochs: epochs to run (the scale knob; ``paper_epochs`` is the plan).
        paper_epochs: the paper's number of epochs for this experiment.
        learning_rate: Adam's initial learning rate.
        lr_schedule: a key of :data:`LR_SCHEDULES`.
        sync_period: LaPerm's k (ignored by Adam).
        skip_bias: LaPerm leaves biases alone.
        skip_bn: LaPerm leaves normalisation parameters alone.
        augmentation: an augmentation preset of :mod:`laperm.data` or None.
        preprocessing: a preprocessing name of :mod:`laperm.data`.
        prune_keep: keep probability of random pruning (1 - p), or None.
        first_layer_keep: the first layer keeps at least this much.
        shared_value: the value v of weight-agnostic nets (Section 5.5), or None.
        shared_keep: kept fraction(s) for ``shared_value`` (float or per layer).
        shared_mask: how the shared-value mask is drawn: ``"bernoulli"`` (the
            paper) or ``"per_unit"`` (every unit keeps the same number of
            connections; :func:`laperm.pruning.shared_value`).
        validation_size: images held out of the training set to choose the best
            epoch (the authors chose it on the test set).
        bn_batches: batches of 50 training images over which a LaPerm run's
            BatchNorm statistics are re-estimated before every evaluation of
            the synchronised weights (:mod:`laperm.batchnorm`); 0 evaluates
            with the stale statistics only.  Models without BatchNorm ignore it.
        precision: ``"float32"`` (default), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the Keras dtype policy of the run.  The
            variables, sorted theta_0 and the ranks stay float32.
        train_fraction: share of the remaining training set used (scale knob).
        seed: seeds weights, splits, pruning masks, shuffling, augmentation.
        notes: free text recorded with the result.
    """

    name: str
    model: str
    dataset: str
    optimizer: str = "laperm"
    batch_size: int = 50
    epochs: int = 1
    paper_epochs: int = 1
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    sync_period: int = 20
    skip_bias: bool = True
    skip_bn: bool = True
    augmentation: str | None = None
    preprocessing: str = "scale01"
    prune_keep: float | None = None
    first_layer_keep: float = 0.8
    shared_value: float | None = None
    shared_keep: float | tuple | None = None
    shared_mask: str = "bernoulli"
    validation_size: int = 5000
    bn_batches: int = 200
    precision: str = "float32"
    train_fraction: float = 1.0
    seed: int = 0
    notes: str = ""

    def __post_init__(self):
        if self.optimizer not in ("laperm", "adam"):
            raise ValueError(f"optimizer must be 'laperm' or 'adam'; received {self.optimizer!r}.")
        for field in ("batch_size", "epochs", "paper_epochs", "sync_period"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{field}` must be a positive integer; received {value!r}.")
        if not 0 < float(self.train_fraction) <= 1:
            raise ValueError(f"`train_fraction` must be in (0, 1]; received {self.train_fraction!r}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"Unknown lr_schedule {self.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}."
            )
        if isinstance(self.bn_batches, bool) or not isinstance(
                self.bn_batches, (int, np.integer)) or self.bn_batches < 0:
            raise ValueError(f"`bn_batches` must be an integer >= 0; received {self.bn_batches!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}.")
        if self.shared_mask not in SHARED_MASKS:
            raise ValueError(f"shared_mask must be one of {', '.join(SHARED_MASKS)}; "
                             f"received {self.shared_mask!r}.")
        if isinstance(self.shared_keep, list):
            object.__setattr__(self, "shared_keep", tuple(self.shared_keep))

    def replace(self, **changes) -> "ExperimentConfig":
        """A copy with some fields changed (unknown fields list the valid ones)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(
                f"Unknown ExperimentConfig field(s) {unknown}; valid: {', '.join(sorted(valid))}."
            )
        return dataclasses.replace(self, **changes)

    def adam_baseline(self) -> "ExperimentConfig":
        """The same run trained by plain Adam (the paper's comparison)."""
        return self.replace(optimizer="adam", name=f"{self.name}_adam")

    def to_dict(self) -> dict:
        """A JSON-able dict of all fields."""
        d = dataclasses.asdict(self)
        if isinstance(d["shared_keep"], tuple):
            d["shared_keep"] = list(d["shared_keep"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        return cls(**d)

    @property
    def hash(self) -> str:
        """A short sha256 of the canonical JSON of the config (without notes)."""
        d = self.to_dict()
        d.pop("notes")
        for name, default in _ADDED_LATER.items():  # older records keep their hash
            if d.get(name) == default:
                d.pop(name)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def is_reduced(self) -> bool:
        """Fewer epochs than the paper's, or part of the training set."""
        return self.epochs < self.paper_epochs or self.train_fraction < 1

    @property
    def is_paper_scale(self) -> bool:
        """The paper's number of epochs on the whole training set."""
        return self.epochs == self.paper_epochs and self.train_fraction == 1

    @property
    def scale_label(self) -> str:
        """``"paper scale"``, e.g. ``"reduced: 3 of 125 epochs, 10% of the training set"``,
        or ``"extended: 50 epochs (the paper ran 10)"``."""
        if self.is_paper_scale:
            return "paper scale"
        fraction = (f"{100 * self.train_fraction:.2g}% of the training set"
                    if self.train_fraction < 1 else None)
        if self.epochs > self.paper_epochs:
            parts = [f"{self.epochs} epochs (the paper ran {self.paper_epochs})", fraction]
            return ("extended: " if fraction is None else "not paper scale: ") + ", ".join(
                p for p in parts if p)
        parts = [f"{self.epochs} of {self.paper_epochs} epochs", fraction]
        return "reduced: " + ", ".join(p for p in parts if p)


#: Fields added after the first committed records, with their defaults: at
#: the default they are left out of :attr:`ExperimentConfig.hash`.
_ADDED_LATER = {"shared_mask": "bernoulli", "bn_batches": 200, "precision": "float32"}

#: Keras dtype policies a run may use (variables stay float32 in all of them).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _paper(name, **kw) -> ExperimentConfig:
    kw.setdefault("epochs", kw.get("paper_epochs", 1))
    return ExperimentConfig(name=name, **kw)


_CONV7 = dict(
    model="conv7", dataset="mnist", batch_size=50, paper_epochs=45, lr_schedule="exp95",
    skip_bias=False, augmentation="mnist", preprocessing="scale01",
)
_CIFAR_CONV = dict(
    dataset="cifar10", batch_size=50, paper_epochs=125, lr_schedule="step06",
    sync_period=1000, augmentation="cifar_conv", preprocessing="cifar_raw",
)
_RESNET = dict(
    model="resnet50", dataset="cifar10", batch_size=50, paper_epochs=200, lr_schedule="resnet",
    augmentation="resnet", preprocessing="pixel_mean",
)
_FC = dict(dataset="mnist", batch_size=128, lr_schedule="exp95", sync_period=250,
           skip_bias=False, preprocessing="scale01")

#: The paper's experiments (its results table and Section 5), at paper scale.
EXPERIMENTS: dict[str, ExperimentConfig] = {
    "conv7": _paper("conv7", sync_period=1200, **_CONV7),
    "conv7_k20": _paper("conv7_k20", sync_period=20, **_CONV7),
    "conv2": _paper("conv2", model="conv2", **_CIFAR_CONV),
    "conv4": _paper("conv4", model="conv4", **_CIFAR_CONV),
    "conv13": _paper("conv13", model="conv13", **_CIFAR_CONV),
    "resnet50": _paper("resnet50", sync_period=400, **_RESNET),
    "resnet50_p30": _paper("resnet50_p30", sync_period=800, prune_keep=0.7, **_RESNET),
    "resnet50_p50": _paper("resnet50_p50", sync_period=800, prune_keep=0.5, **_RESNET),
    "resnet50_p70": _paper("resnet50_p70", sync_period=800, prune_keep=0.3, **_RESNET),
    "f1": _paper("f1", model="f1", paper_epochs=10, shared_value=0.08, shared_keep=0.6, **_FC),
    "f2": _paper("f2", model="f2", paper_epochs=25, shared_value=0.03,
                 shared_keep=(1 / 15, 1 / 7, 1 / 3), **_FC),
    # Control (not in the paper): F2 with every unit keeping the same number
    # of connections; the paper's Bernoulli mask leaves the output classes
    # unequally connected, which LaPerm cannot change.
    "f2_per_unit": _paper("f2_per_unit", model="f2", paper_epochs=25, shared_value=0.03,
                          shared_keep=(1 / 15, 1 / 7, 1 / 3), shared_mask="per_unit", **_FC),
}

#: The paper's reported test accuracy per experiment (its results table).
PAPER_ACCURACY = {
    "conv7": 0.9972, "conv2": 0.7821, "conv4": 0.8917, "conv13": 0.9221,
    "resnet50": 0.9253, "resnet50_p30": 0.9232, "resnet50_p50": 0.9202,
    "resnet50_p70": 0.9097, "f1": 0.8546, "f2": 0.7814,
}


def paper_config(name: str, **changes) -> ExperimentConfig:
    """The paper's config of one experiment, optionally changed.

    Raises:
        ValueError: unknown experiment name (the message lists the valid ones).
    """
    if name not in EXPERIMENTS:
        raise ValueError(
            f"Unknown experiment {name!r}; valid names: {', '.join(EXPERIMENTS)}."
        )
    return EXPERIMENTS[name].replace(**changes) if changes else EXPERIMENTS[name]


# --------------------------------------------------------------------------
# Environment description recorded with every result
# --------------------------------------------------------------------------


def environment_info() -> dict:
    """Hardware, library versions and git commit, for result records."""
    import keras

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "accelerator": _accelerator(),
        },
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": np.__version__,
            "laperm": _laperm_version(),
        },
        "commit": _git_commit(),
    }
    backend = keras.backend.backend()
    try:
        module = __import__(backend)
        info["versions"][backend] = getattr(module, "__version__", "?")
    except ImportError:  # pragma: no cover
        pass
    return info


def _laperm_version():
    from laperm import __version__

    return __version__


def _accelerator() -> str:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return ", ".join(g.name for g in gpus) if gpus else "none (CPU)"
        if backend == "jax":
            import jax

            devices = jax.devices()
            if devices[0].platform == "cpu":
                return "none (CPU)"
            return ", ".join(getattr(d, "device_kind", str(d)) for d in devices)
    except Exception:  # pragma: no cover - informational only
        return "unknown"
    return "unknown"


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    return commit + ("+dirty" if dirty else "")


# --------------------------------------------------------------------------
# Building the pieces
# --------------------------------------------------------------------------


def load_splits(config: ExperimentConfig, data_dir=None) -> dict:
    """The arrays of a config: training, validation and test splits (no pipelines)."""
    from laperm import data

    (x_train, y_train), (x_test, y_test) = data.load(config.dataset, data_dir)
    (x_tr, y_tr), (x_val, y_val) = data.train_val_split(
        x_train, y_train, config.validation_size, seed=config.seed
    )
    if config.train_fraction < 1:
        x_tr, y_tr = data.subset(x_tr, y_tr, float(config.train_fraction), seed=config.seed)
    return {"train": (x_tr, y_tr), "val": (x_val, y_val), "test": (x_test, y_test),
            "info": data.describe(config.dataset, data_dir)}


def prepare_data(config: ExperimentConfig, data_dir=None, first_epoch: int = 0,
                 splits: dict | None = None) -> dict:
    """Splits, preprocessing and ``tf.data`` pipelines of a config.

    The training pipeline holds epochs ``first_epoch .. config.epochs - 1``;
    the order and augmentation of each are functions of ``(seed, epoch)``
    (:func:`laperm.data.make_dataset`), so a resumed run sees the batches of
    the uninterrupted one.
    """
    from laperm import data

    splits = splits or load_splits(config, data_dir)
    (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    pre = data.make_preprocessor(config.preprocessing, x_tr)
    remaining = config.epochs - int(first_epoch)
    return {
        "train": data.make_dataset(
            x_tr, y_tr, config.batch_size, preprocess=pre, augment=config.augmentation,
            shuffle=True, seed=config.seed, epochs=max(remaining, 1), first_epoch=first_epoch,
        ),
        "val": data.make_dataset(x_val, y_val, 500, preprocess=pre),
        "test": data.make_dataset(x_test, y_test, 500, preprocess=pre),
        "n_train": int(len(x_tr)),
        "n_val": int(len(x_val)),
        "n_test": int(len(x_test)),
        "test_note": splits["info"].test_note,
        "steps_per_epoch": int(math.ceil(len(x_tr) / config.batch_size)),
        "bn_images": _bn_images(config, x_tr, pre),
    }


def _bn_images(config: ExperimentConfig, x_tr, pre):
    """The preprocessed training images of the BatchNorm re-estimation (no augmentation)."""
    from laperm.batchnorm import DEFAULT_BATCH_SIZE

    if config.bn_batches == 0:
        return None
    need = min(len(x_tr), config.bn_batches * DEFAULT_BATCH_SIZE)
    idx = np.sort(np.random.default_rng([config.seed, 0xB1]).choice(len(x_tr), need, replace=False))
    return pre(np.asarray(x_tr)[idx])


def build_model(config: ExperimentConfig):
    """The model of a config with its initial weights (pruned / shared value)."""
    import keras

    from laperm import models, pruning

    keras.utils.set_random_seed(config.seed)
    model = models.get(config.model)
    tables = {}
    if config.prune_keep is not None and config.prune_keep < 1:
        tables["pruning"] = pruning.random_prune(
            model, config.prune_keep, first_layer_keep=config.first_layer_keep, seed=config.seed
        )
    if config.shared_value is not None:
        keep = config.shared_keep
        keep = list(keep) if isinstance(keep, tuple) else keep
        tables["shared_value"] = pruning.shared_value(
            model, config.shared_value, keep if keep is not None else 1.0, seed=config.seed,
            mask=config.shared_mask,
        )
    return model, tables


def build_optimizer(config: ExperimentConfig):
    """Adam, wrapped in LaPerm unless the config is the Adam baseline."""
    import keras

    from laperm.optimizer import LaPerm

    adam = keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "adam":
        return adam
    return LaPerm(adam, sync_period=config.sync_period, skip_bias=config.skip_bias,
                  skip_bn=config.skip_bn)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


class RunDirError(ValueError):
    """A run folder holds a run that must not be continued or reused here."""


def _tmp_name(path: Path) -> Path:
    """``name.tmp.<suffixes>`` beside ``path`` (the pattern cleaned at start)."""
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.tmp.{suffixes}" if dot else f"{stem}.tmp")


def _atomic(path: Path, write) -> None:
    """Write ``path`` through a temporary file and ``os.replace``."""
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


def _atomic_save(model, path: Path, weights_only=False) -> None:
    _atomic(path, (lambda tmp: model.save_weights(tmp)) if weights_only
            else (lambda tmp: model.save(tmp)))


class RunFiles:
    """The files of one run directory.

    The resume point is one fact: ``checkpoint.keras``, written last at the
    end of every epoch (atomically), holds the model, the optimizer state and
    (in the optimizer's step count) the number of epochs done.  Everything
    else is either written before it (the history, the best weights of that
    epoch) and cut back to it on resume, or derived from it.
    """

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.config = self.dir / "config.json"
        self.checkpoint = self.dir / "checkpoint.keras"
        self.best_weights = self.dir / "best.weights.h5"
        self.history = self.dir / "history.csv"
        self.result = self.dir / "result.json"
        self.state = self.dir / "state.json"  # written by older versions only
        self.init_tables = self.dir / "init_tables.json"
        self.resumes = self.dir / "resumes.json"

    def best_of_epoch(self, epoch: int) -> Path:
        """Best weights written at ``epoch``, before that epoch's checkpoint."""
        return self.dir / f"best-e{int(epoch):04d}.weights.h5"

    def best_candidates(self) -> dict[int, Path]:
        out = {}
        for path in self.dir.glob("best-e*.weights.h5"):
            try:
                out[int(path.name[len("best-e"):].split(".")[0])] = path
            except ValueError:
                continue
        return out

    def clean_temporary(self) -> list[Path]:
        """Remove temporary files left by a killed process or a full disk."""
        removed = []
        for path in list(self.dir.glob("*.tmp")) + list(self.dir.glob("*.tmp.*")):
            if path.is_file():
                path.unlink()
                removed.append(path)
        return removed

    def remove_run(self) -> None:
        """Delete a run's records, the result first (so none outlives its history)."""
        for path in [self.result, self.checkpoint, self.history, self.best_weights,
                     self.state, self.init_tables, self.resumes,
                     *self.best_candidates().values()]:
            path.unlink(missing_ok=True)


def _provenance(config: ExperimentConfig, data_dir) -> dict:
    """What a run was made on besides its config: the data and the backend."""
    import keras

    from laperm import data

    return {"data": data.fingerprint(config.dataset, data_dir),
            "backend": keras.backend.backend()}


def _check_reuse(files: RunFiles, stored: dict, config: ExperimentConfig, provenance: dict,
                 allow_other_backend: bool) -> None:
    """Refuse a run folder made with another config, other data or (unless asked) backend."""
    if stored.get("hash") != config.hash:
        raise RunDirError(
            f"{files.dir} holds a run of a different config (hash {stored.get('hash')} "
            f"vs {config.hash}); choose another folder or delete that one."
        )
    made_on = stored.get("provenance")
    if made_on is None:  # older records: compare what their result says about the data
        if files.result.exists():
            scale = json.loads(files.result.read_text()).get("scale", {})
            seen = (scale.get("n_train", 0) + scale.get("n_val", 0) if config.train_fraction == 1
                    else None, scale.get("n_test"))
            now = (provenance["data"]["n_train"] if config.train_fraction == 1 else None,
                   provenance["data"]["n_test"])
            if seen != now:
                raise RunDirError(
                    f"{files.dir} holds a run made on other {config.dataset} data "
                    f"({seen[1]} test images, now {now[1]}); choose another folder or "
                    "delete that one."
                )
        return
    if made_on["data"].get("sha256") != provenance["data"]["sha256"]:
        raise RunDirError(
            f"{files.dir} holds a run made on other {config.dataset} data (sha256 "
            f"{made_on['data'].get('sha256', '?')[:12]}, "
            f"{made_on['data'].get('n_train')} training and {made_on['data'].get('n_test')} "
            f"test images; the data now: {provenance['data']['sha256'][:12]}, "
            f"{provenance['data']['n_train']} and {provenance['data']['n_test']}); choose "
            "another folder or delete that one."
        )
    if made_on.get("backend") != provenance["backend"] and not allow_other_backend:
        raise RunDirError(
            f"{files.dir} holds a run made with the Keras backend {made_on.get('backend')!r}, "
            f"not {provenance['backend']!r}; pass allow_other_backend=True "
            "(reproduce: --allow-other-backend) to use it anyway."
        )


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def _evaluate(model, dataset) -> tuple[float, float]:
    loss, acc = model.evaluate(dataset, verbose=0)[:2]
    return float(loss), float(acc)


def _laperm_of(optimizer):
    from laperm.optimizer import find_laperm

    return find_laperm(optimizer, required=False)


def _best_so_far(rows: list[dict]) -> dict:
    """Best epoch on validation (the first of equals) among history rows."""
    best = {"best_val_accuracy": -1.0, "best_epoch": None, "test_accuracy_at_best": None}
    for row in rows:
        if row["val_accuracy"] > best["best_val_accuracy"]:
            best = {"best_val_accuracy": float(row["val_accuracy"]),
                    "best_epoch": int(row["epoch"]),
                    "test_accuracy_at_best": float(row["test_accuracy"])}
    return best


def _wall_time(rows: list[dict]) -> float:
    if not rows:
        return 0.0
    last = rows[-1].get("wall_time_s")
    if last is not None and not (isinstance(last, float) and math.isnan(last)):
        return float(last)
    return float(sum(r.get("epoch_time_s", 0.0) for r in rows))


def _seed_states(model, seed: int, epoch: int) -> None:
    """Set every random layer's seed state (dropout) from (seed, epoch).

    Keras does not save seed-generator states with a model, so a resumed run
    would draw other dropout masks; setting them at the start of every epoch
    makes epoch e's draws a function of (seed, e) in every process.
    """
    for i, v in enumerate(v for v in model.variables if v.name == "seed_generator_state"):
        rng = np.random.default_rng([int(seed), int(epoch), i, 0x5EED])
        v.assign(np.array([rng.integers(0, 2**31 - 1), 0], dtype=v.dtype))


def _evaluate_three_ways(config, model, laperm, pipes, on_best=None) -> dict:
    """The evaluations of one epoch (Section 4: judge the synchronised network).

    LaPerm runs: the unsynchronised weights (test set; what the authors' CIFAR
    notebooks evaluated), the synchronised weights with the stale BatchNorm
    statistics, and the synchronised weights with re-estimated statistics,
    the primary number (``val``/``test``).  Models without BatchNorm, and
    Adam runs, have one evaluation: as they are (for LaPerm: synchronised).
    ``on_best(val_accuracy)`` is called while the judged weights are in place.
    """
    from laperm.batchnorm import batchnorm_layers, recalibrated_batchnorm

    nan = float("nan")
    out = {"test_unsynced": nan, "val_stale_bn": nan, "test_stale_bn": nan, "bn_seconds": nan}

    def judge():
        out["val"] = _evaluate(model, pipes["val"])
        out["test"] = _evaluate(model, pipes["test"])
        if on_best is not None:
            on_best(out["val"][1])

    if laperm is None:
        judge()
        return out
    laperm.check_finite_sync()
    out["test_unsynced"] = _evaluate(model, pipes["test"])[1]
    with laperm.synchronised():
        if not batchnorm_layers(model) or not config.bn_batches or pipes["bn_images"] is None:
            judge()
            return out
        out["val_stale_bn"] = _evaluate(model, pipes["val"])[1]
        out["test_stale_bn"] = _evaluate(model, pipes["test"])[1]
        t0 = time.perf_counter()
        with recalibrated_batchnorm(model, pipes["bn_images"], batches=config.bn_batches,
                                    seed=config.seed):
            out["bn_seconds"] = time.perf_counter() - t0
            judge()
    return out


class _EpochEnd:
    """Evaluation on synchronised weights, best-on-validation, checkpoints."""

    def __init__(self, config, model, pipes, files, rows, progress, wall_before):
        self.config, self.model, self.pipes, self.files = config, model, pipes, files
        self.rows, self.progress = rows, progress
        self.best = _best_so_far(rows)
        self.t_epoch = time.perf_counter()
        self.t_start = time.perf_counter()
        self.wall_before = wall_before

    def _save_if_best(self, epoch_number):
        """Called with the primary validation accuracy while the judged weights are in place."""

        def save(val_acc):
            if val_acc > self.best["best_val_accuracy"] and self.files is not None:
                _atomic_save(self.model, self.files.best_of_epoch(epoch_number),
                             weights_only=True)

        return save

    def callback(self):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                _seed_states(outer.model, outer.config.seed, epoch)
                outer.t_epoch = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                if outer.progress is not None:
                    outer.progress.update(1)

            def on_epoch_end(self, epoch, logs=None):
                outer.epoch_end(epoch, logs or {})

        return Callback()

    def epoch_end(self, epoch, logs):
        from keras import ops

        optimizer = self.model.optimizer
        laperm = _laperm_of(optimizer)
        epoch_number = epoch + 1
        scores = _evaluate_three_ways(self.config, self.model, laperm, self.pipes,
                                      on_best=self._save_if_best(epoch_number))
        val_loss, val_acc = scores["val"]
        test_loss, test_acc = scores["test"]
        improved = val_acc > self.best["best_val_accuracy"]
        row = {
            "epoch": epoch_number,
            "loss": float(logs.get("loss", np.nan)),
            "train_accuracy": float(logs.get("accuracy", np.nan)),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "test_accuracy_unsynced": scores["test_unsynced"],
            "val_accuracy_stale_bn": scores["val_stale_bn"],
            "test_accuracy_stale_bn": scores["test_stale_bn"],
            "bn_recalibration_s": scores["bn_seconds"],
            "learning_rate": float(ops.convert_to_numpy(optimizer.learning_rate)),
            "sync_count": int(ops.convert_to_numpy(laperm.sync_count)) if laperm else 0,
            "epoch_time_s": time.perf_counter() - self.t_epoch,
            "wall_time_s": self.wall_before + time.perf_counter() - self.t_start,
        }
        self.rows.append(row)
        if improved:
            self.best = _best_so_far([row])
        if self.files is not None:
            # The history (with this epoch) and the best weights first; the
            # checkpoint last: it is the resume point, and a resume cuts the
            # history back to the checkpoint's epoch.
            _atomic_write_text(self.files.history, pd.DataFrame(self.rows).to_csv(index=False))
            _atomic_save(self.model, self.files.checkpoint)
            for e, path in self.files.best_candidates().items():
                if e != self.best["best_epoch"]:
                    path.unlink(missing_ok=True)
        if self.progress is not None:
            self.progress.set_postfix(val_acc=f"{val_acc:.4f}", test_acc=f"{test_acc:.4f}")


def _stored_result(files: RunFiles, config: ExperimentConfig):
    """``(history, result)`` of a finished run in ``files``, or None.

    A result is only returned with the history it describes; a stale result
    (another config, or a history of another length) is removed.
    """
    if not files.result.exists():
        return None
    try:
        result = json.loads(files.result.read_text())
        history = pd.read_csv(files.history) if files.history.exists() else None
    except (ValueError, OSError):
        result, history = {}, None
    if (history is not None and result.get("config_hash") == config.hash
            and int(result.get("scale", {}).get("epochs_run", -1)) == len(history)):
        return history, result
    files.result.unlink()
    return None


def _resume_point(files: RunFiles, steps_per_epoch: int):
    """Load the checkpoint; return ``(model, epochs_done, history rows)``."""
    import keras

    from laperm.optimizer import LaPermStateError

    try:
        model = keras.models.load_model(files.checkpoint)
    except LaPermStateError:
        raise
    except Exception as exc:
        raise RunDirError(
            f"{files.checkpoint} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]}); "
            "delete it to start the run again from epoch 1."
        ) from exc
    from keras import ops

    steps = int(ops.convert_to_numpy(model.optimizer.iterations))
    done, partial = divmod(steps, steps_per_epoch)
    if partial:
        raise RunDirError(
            f"{files.checkpoint} was saved after {steps} steps, not a whole number of "
            f"epochs of {steps_per_epoch} steps; delete it to start again."
        )
    rows = pd.read_csv(files.history).to_dict("records") if files.history.exists() else []
    if len(rows) < done:
        raise RunDirError(
            f"{files.history} has {len(rows)} epochs but the checkpoint has {done}; "
            "the folder was changed by hand: delete it to start again."
        )
    return model, done, rows[:done]


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Run under a Keras dtype policy, putting the previous one back on exit."""
    import keras

    previous = keras.mixed_precision.global_policy()
    if name != "float32" or previous.name != "float32":
        keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def run(
    config: ExperimentConfig,
    out_dir: str | os.PathLike | None = None,
    *,
    data_dir=None,
    resume: bool = True,
    progress: bool = True,
    allow_other_backend: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Train one experiment and measure it honestly.

    Args:
        config: the run (see :func:`paper_config` and ``config.replace``).
        out_dir: folder for ``config.json``, ``history.csv``,
            ``checkpoint.keras`` (the resume point), ``best.weights.h5`` (best
            epoch on validation, synchronised) and ``result.json``.  None keeps
            nothing on disk (and cannot resume).
        data_dir: folder with ``mnist.npz``/``cifar10.npz`` (else
            ``$LAPERM_DATA_DIR``, else download).
        resume: continue from ``out_dir``'s checkpoint when it exists for the
            same config, data and backend; a finished run is returned as
            stored.  False starts again (the old result is deleted first).
        progress: show a progress bar (tqdm; works in notebooks).
        allow_other_backend: reuse or continue a run made with another Keras
            backend.

    A run killed at any moment and started again gives the history of the
    uninterrupted run: the order and augmentation of epoch e and its dropout
    masks are functions of (seed, e), and the checkpoint is the only resume
    point.  The result lists the epochs at which the run was resumed.

    Returns:
        ``(history, result)``: a DataFrame with one row per epoch and the
        result record (also written to ``result.json``).

    Raises:
        RunDirError: ``out_dir`` holds a run of a different config, made on
            other data, or (unless allowed) with another backend.
        laperm.data.DataNotFoundError, laperm.data.DataFormatError: the data.
    """
    with _dtype_policy(config.precision):
        return _run(config, out_dir, data_dir=data_dir, resume=resume, progress=progress,
                    allow_other_backend=allow_other_backend)


def _run(config, out_dir, *, data_dir, resume, progress, allow_other_backend):
    import keras

    from laperm.callbacks import NonFiniteGuard

    # The data first: a missing or damaged file leaves no folder behind.
    splits = load_splits(config, data_dir)
    provenance = _provenance(config, data_dir)
    files = RunFiles(out_dir) if out_dir is not None else None
    rows: list[dict] = []
    model, tables, done, resumed_at = None, None, 0, []
    steps_per_epoch = int(math.ceil(len(splits["train"][0]) / config.batch_size))
    if files is not None:
        if files.config.exists():
            _check_reuse(files, json.loads(files.config.read_text()), config, provenance,
                         allow_other_backend)
        files.dir.mkdir(parents=True, exist_ok=True)
        files.clean_temporary()
        if not resume:
            files.remove_run()
        else:
            stored = _stored_result(files, config)
            if stored is not None:
                return stored
        _atomic_write_text(files.config, json.dumps(
            {"hash": config.hash, "config": config.to_dict(), "provenance": provenance},
            indent=1))
        if resume and files.checkpoint.exists():
            model, done, rows = _resume_point(files, steps_per_epoch)
            tables = (json.loads(files.init_tables.read_text())
                      if files.init_tables.exists() else {})
            resumed_at = json.loads(files.resumes.read_text()) if files.resumes.exists() else []
            if done < config.epochs:
                resumed_at = sorted(set(resumed_at) | {done})
                _atomic_write_text(files.resumes, json.dumps(resumed_at))
            best = _best_so_far(rows)["best_epoch"]
            for e, path in files.best_candidates().items():
                if e > done or e != best:
                    path.unlink(missing_ok=True)  # written after the checkpoint was
        elif files.history.exists():
            # A history without its checkpoint cannot be continued: keep it
            # beside the new run instead of overwriting it.
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
            kept = files.dir / f"history.abandoned-{stamp}.csv"
            os.replace(files.history, kept)
            print(f"[laperm] {files.dir}: no checkpoint to resume from; the old history "
                  f"was kept as {kept.name} and the run starts again.", flush=True)
            files.remove_run()

    pipes = prepare_data(config, data_dir, first_epoch=done, splits=splits)
    if model is None:
        model, table_frames = build_model(config)
        tables = json.loads(json.dumps({k: v.to_dict("records") for k, v in table_frames.items()},
                                       default=_json_default))
        if files is not None:
            _atomic_write_text(files.init_tables,
                               json.dumps(tables, indent=1, default=_json_default))
        model.compile(
            optimizer=build_optimizer(config),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    remaining = config.epochs - done
    bar = None
    if progress and remaining > 0:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=remaining * steps_per_epoch,
            desc=f"{config.name} [{config.optimizer}] epochs {done + 1}-{config.epochs}",
            unit="step", mininterval=1.0,
        )
    epoch_end = _EpochEnd(config, model, pipes, files, rows, bar, _wall_time(rows))
    lr_callback = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: learning_rate_at(config.lr_schedule, config.learning_rate, epoch)
    )
    try:
        if remaining > 0:
            callbacks = [lr_callback, epoch_end.callback()]
            if _laperm_of(model.optimizer) is not None:
                callbacks.insert(0, NonFiniteGuard())
            model.fit(
                pipes["train"], epochs=config.epochs, initial_epoch=done,
                steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False,
                callbacks=callbacks,
            )
    finally:
        if bar is not None:
            bar.close()

    history = pd.DataFrame(rows)
    best = _best_so_far(rows)
    laperm = _laperm_of(model.optimizer)
    final = _evaluate_three_ways(config, model, laperm, pipes)
    final_val, final_test = final["val"][1], final["test"][1]
    adam_recalibrated = None
    if laperm is None and config.bn_batches and pipes["bn_images"] is not None:
        from laperm.batchnorm import batchnorm_layers, recalibrated_batchnorm

        if batchnorm_layers(model):  # to show that re-estimation changes nothing for Adam
            with recalibrated_batchnorm(model, pipes["bn_images"], batches=config.bn_batches,
                                        seed=config.seed):
                adam_recalibrated = _evaluate(model, pipes["test"])[1]
    if files is not None and best["best_epoch"] is not None:
        candidate = files.best_candidates().get(best["best_epoch"])
        if candidate is not None:
            os.replace(candidate, files.best_weights)
    best_by_test = history.loc[history["test_accuracy"].idxmax()] if len(history) else None
    result: dict[str, Any] = {
        "name": config.name,
        "config": config.to_dict(),
        "config_hash": config.hash,
        "optimizer": config.optimizer,
        "scale": {
            "label": config.scale_label,
            "is_reduced": not config.is_paper_scale,
            "epochs_run": len(rows),
            "paper_epochs": config.paper_epochs,
            "train_fraction": config.train_fraction,
            "n_train": pipes["n_train"],
            "n_val": pipes["n_val"],
            "n_test": pipes["n_test"],
        },
        "test_set": pipes["test_note"],
        "evaluated_on_synchronised_weights": laperm is not None,
        "evaluation": _evaluation_note(config, model, laperm is not None),
        "final_val_accuracy": final_val,
        "final_test_accuracy": final_test,
        "final_test_accuracy_stale_bn": final["test_stale_bn"],
        "final_test_accuracy_unsynced": final["test_unsynced"],
        "final_test_accuracy_recalibrated_bn_adam": adam_recalibrated,
        "precision": config.precision,
        "best_epoch": best["best_epoch"],
        "best_val_accuracy": best["best_val_accuracy"],
        "test_accuracy_at_best_val": best["test_accuracy_at_best"],
        "best_test_accuracy_any_epoch": (
            float(best_by_test["test_accuracy"]) if best_by_test is not None else None
        ),
        "paper_accuracy": PAPER_ACCURACY.get(config.name),
        "wall_time_s": _wall_time(rows),
        "resumed_at_epochs": resumed_at,
        "data_order": "epoch e's batches, augmentation and dropout are functions of (seed, e)",
        "provenance": provenance,
        "init_tables": tables,
        **environment_info(),
    }
    if files is not None:
        _atomic_write_text(files.result, json.dumps(result, indent=1, default=_json_default))
    return history, result


def _evaluation_note(config, model, is_laperm: bool) -> str:
    from laperm.batchnorm import batchnorm_layers

    has_bn = bool(batchnorm_layers(model))
    if not is_laperm:
        return "the weights as trained" + (
            "; BatchNorm statistics as trained" if has_bn else "")
    if has_bn and config.bn_batches:
        return (f"synchronised weights (a permutation of theta_0) with BatchNorm statistics "
                f"re-estimated on {config.bn_batches} batches of 50 training images "
                "(training mode, dropout active); also logged: stale statistics, and the "
                "unsynchronised weights")
    return "synchronised weights (a permutation of theta_0); also logged: the unsynchronised weights"


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    return str(obj)
