"""What defines one training run: :class:`ExperimentConfig` (Section 5).

An :class:`ExperimentConfig` is a frozen dataclass holding everything that
defines a run: model, data, preprocessing and augmentation, the inner Adam and
its learning-rate schedule, LaPerm's k and which variables it permutes (or a
plain-Adam baseline), pruning or shared-value initialisation, the seed, the
precision and the scale knobs of reduced runs.  Its :attr:`~ExperimentConfig.hash`
names the run; fields added later are left out of the hash at their default,
so every older record keeps its hash.  The paper's configs are in
:data:`laperm.paper.EXPERIMENTS`; :func:`laperm.paper.paper_config` returns one, changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

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


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps of one epoch: ``ceil(n_train / batch_size)`` (the last batch may be short)."""
    return -(-int(n_train) // int(batch_size))


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
            the synchronised weights (:mod:`laperm.method.batchnorm`); 0 evaluates
            with the stale statistics only.  Models without BatchNorm ignore it.
        precision: ``"float32"`` (default), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the Keras dtype policy of the run.  The
            variables, sorted theta_0 and the ranks stay float32.
        kernels: ``"keras"`` (default: the Keras layers as they are) or
            ``"fused"``: BatchNorm, Adam and convolutions with tiny outputs as
            TensorFlow's fused kernels, the same math in fewer ops
            (:mod:`laperm.method.fused`; other backends use the Keras layers either way).
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
    kernels: str = "keras"
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
        if self.kernels not in KERNELS:
            raise ValueError(f"Unknown kernels {self.kernels!r}; valid: {', '.join(KERNELS)}.")
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(f"Unknown preprocessing {self.preprocessing!r}; "
                             f"valid: {', '.join(PREPROCESSINGS)}.")

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

    @property
    def experiment(self) -> str:
        """The paper experiment this run belongs to (:func:`experiment_name` of its name)."""
        return experiment_name(self.name)

    def adam_baseline(self) -> "ExperimentConfig":
        """The same run trained by plain Adam (the paper's comparison)."""
        return self.replace(optimizer="adam", name=f"{self.name}{ADAM_SUFFIX}")

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

    def describe(self) -> str:
        """One line a page prints for a run: model, optimizer, k (LaPerm only), scale.

        E.g. ``"f2: f2 on mnist, LaPerm (k = 250), paper scale"`` or
        ``"f2_adam: f2 on mnist, Adam, paper scale"``: a plain-optimizer run
        has no sync period, so none is printed.
        """
        how = (f"LaPerm (k = {self.sync_period})" if self.optimizer == "laperm"
               else self.optimizer.capitalize())
        return f"{self.name}: {self.model} on {self.dataset}, {how}, {self.scale_label}"

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
_ADDED_LATER = {"shared_mask": "bernoulli", "bn_batches": 200, "precision": "float32",
                "kernels": "keras"}

#: Keras dtype policies a run may use (variables stay float32 in all of them).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

#: Kernel choices of a run: the Keras layers as they are, or TensorFlow's fused
#: BatchNorm, Adam and small convolutions (:mod:`laperm.method.fused`).
KERNELS = ("keras", "fused")

#: Named input preprocessing of Section 5, with what each does (the authors'
#: Conv2/4/13 notebooks fed raw 0-255 pixels where standardised input was
#: intended).  :data:`laperm.data.PREPROCESSORS` fits each of them.
PREPROCESSINGS: dict[str, str] = {
    "scale01": "x / 255 (MNIST: Conv7, F1, F2)",
    "cifar_raw": "raw 0-255 float input, as the authors' Conv2/4/13 notebooks actually ran",
    "cifar_standardize":
        "per-channel (x - mean) / std with training-set statistics (the intended Conv2/4/13 input)",
    "pixel_mean": "x / 255 minus the per-pixel mean of the /255 training images (ResNet50)",
}

#: Masks of the shared-value initialisation (Section 5.5,
#: :func:`laperm.pruning.shared_value`): the paper's independent draw per weight,
#: or the control in which every unit keeps the same number of connections.
SHARED_MASKS = ("bernoulli", "per_unit")


#: Suffix of an Adam baseline's config name.  Kept in the name (and so in the
#: hash of every committed record); :func:`experiment_name` is the one place
#: that reads it.
ADAM_SUFFIX = "_adam"


def experiment_name(config_name: str) -> str:
    """The experiment of a config name: ``"conv2_adam"`` -> ``"conv2"``."""
    return config_name.removesuffix(ADAM_SUFFIX)
