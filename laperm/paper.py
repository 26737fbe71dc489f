"""The paper's facts, in one place: its results table, the settings of every
experiment, and the authors' published checkpoints.

Qiu & Suda, *Train-by-Reconnect: Decoupling Locations of Weights from Their
Values*, NeurIPS 2020.  Everything else in the package (experiment configs,
LaPerm presets, pruning and shared-value settings, the book's tables) is
derived from here.

Where the authors' notebooks disagree with the results table, both are kept:
Conv7's notebook syncs every k = 20 steps (table: 1200), the dense ResNet50
notebook every 800 (table: 400); :data:`LAPERM_PRESETS` gives the table's value
under the plain name and the notebook's with a ``_notebook`` suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

from laperm.config import ExperimentConfig


@dataclass(frozen=True)
class TableRow:
    """One row of the paper's results table.

    Attributes:
        experiment: this project's experiment name.
        model: the model (Section 5).
        accuracy: the reported top-1 test accuracy.
        pruned: the share p of weights removed (F1/F2: the zeros of the
            shared-value initialisation).
        k: LaPerm's sync period.
        dataset: ``"mnist"`` or ``"cifar10"``.
        section: the paper's section.
        init: the initial weights.
    """

    experiment: str
    model: str
    accuracy: float
    pruned: float
    k: int
    dataset: str
    section: str
    init: str


#: The paper's results table, in its order.
TABLE: tuple[TableRow, ...] = (
    TableRow("conv7", "Conv7", 0.9972, 0.0, 1200, "mnist", "5.1", "He uniform"),
    TableRow("conv2", "Conv2", 0.7821, 0.0, 1000, "cifar10", "5.2, 5.4", "He uniform"),
    TableRow("conv4", "Conv4", 0.8917, 0.0, 1000, "cifar10", "5.2, 5.4", "He uniform"),
    TableRow("conv13", "Conv13", 0.9221, 0.0, 1000, "cifar10", "5.2, 5.4", "He uniform"),
    TableRow("resnet50", "ResNet50", 0.9253, 0.0, 400, "cifar10", "5.4", "He uniform"),
    TableRow("resnet50_p30", "ResNet50", 0.9232, 0.3, 800, "cifar10", "5.4", "He uniform"),
    TableRow("resnet50_p50", "ResNet50", 0.9202, 0.5, 800, "cifar10", "5.4", "He uniform"),
    TableRow("resnet50_p70", "ResNet50", 0.9097, 0.7, 800, "cifar10", "5.4", "He uniform"),
    TableRow("f1", "F1", 0.8546, 0.4, 250, "mnist", "5.5", "shared value 0.08"),
    TableRow("f2", "F2", 0.7814, 0.92, 250, "mnist", "5.5", "shared value 0.03"),
)

ROWS: dict[str, TableRow] = {row.experiment: row for row in TABLE}

#: The paper's reported test accuracy per experiment.
PAPER_ACCURACY: dict[str, float] = {row.experiment: row.accuracy for row in TABLE}


def row_label(experiment: str) -> str:
    """The paper's name of a row of its table: ``"Conv7"``, ``"ResNet50 (p = 30%)"``, ``"F1"``."""
    row = ROWS[experiment]
    if row.model == "ResNet50" and row.pruned:
        return f"ResNet50 (p = {row.pruned:.0%})"
    return row.model


def model_label(name: str) -> str:
    """The paper's name of a model of its table (``"conv7"`` -> ``"Conv7"``, ``"f2"`` ->
    ``"F2"``); another name in capitals."""
    return row_label(name) if name in ROWS else name.upper()


#: Training and test images of each dataset: the authors trained on every
#: training image (their validation set was the test set) and tested on all
#: 10,000 test images.
TRAIN_IMAGES: dict[str, int] = {"mnist": 60_000, "cifar10": 50_000}
TEST_IMAGES: dict[str, int] = {"mnist": 10_000, "cifar10": 10_000}

#: The sync periods of the authors' notebooks where they differ from the table.
NOTEBOOK_K = {"conv7": 20, "resnet50": 800}

#: Shared-value initialisation of Section 5.5: the value v and the kept share
#: (per kernel, in model order, for F2; checked against the released F2.h5).
SHARED_VALUE: dict[str, dict] = {
    "f1": dict(value=0.08, keep=0.6),
    "f2": dict(value=0.03, keep=(1 / 15, 1 / 7, 1 / 3)),
}

#: Keep probability of each pruning percentage of the ResNet50 rows.
PRUNE_KEEP: dict[int, float] = {
    round(100 * row.pruned): round(1 - row.pruned, 6) for row in TABLE if row.model == "ResNet50"
}

#: The authors' published weight files (their repository's ``pretrained/``):
#: file name -> (experiment, reported accuracy).  Conv2, Conv4, Conv13 and
#: Conv4 with 70 % pruned are not in the snapshot (files of 4 MiB or more).
PUBLISHED_CHECKPOINTS: dict[str, str] = {
    "Conv7.h5": "conv7", "F1.h5": "f1", "F2.h5": "f2", "resnet50.h5": "resnet50",
    "resnet50_30.h5": "resnet50_p30", "resnet50_50.h5": "resnet50_p50",
    "resnet50_70.h5": "resnet50_p70",
}

#: Non-zero share of each kernel of the released F1/F2 files, in layer order
#: (measured with :func:`laperm.pruning.h5_kernel_stats`).
CHECKPOINT_NONZERO: dict[str, list[float]] = {
    "f1": [0.59783],
    "f2": [0.06600, 0.13953, 0.33125],
}


def _paper(name, **kw) -> ExperimentConfig:
    kw.setdefault("epochs", kw.get("paper_epochs", 1))
    return ExperimentConfig(name=name, **kw)


# Training settings per family (Section 5 and the authors' notebooks).
_CONV7 = dict(
    model="conv7", dataset="mnist", batch_size=50, paper_epochs=45, lr_schedule="exp95",
    skip_bias=False, augmentation="mnist", preprocessing="scale01",
)
_CIFAR_CONV = dict(
    dataset="cifar10", batch_size=50, paper_epochs=125, lr_schedule="step06",
    sync_period=ROWS["conv2"].k, augmentation="cifar_conv", preprocessing="cifar_raw",
)
_RESNET = dict(
    model="resnet50", dataset="cifar10", batch_size=50, paper_epochs=200, lr_schedule="resnet",
    augmentation="resnet", preprocessing="pixel_mean",
)
_FC = dict(dataset="mnist", batch_size=128, lr_schedule="exp95", sync_period=ROWS["f1"].k,
           skip_bias=False, preprocessing="scale01")


def _resnet(name):
    row = ROWS[name]
    keep = PRUNE_KEEP[round(100 * row.pruned)]
    return _paper(name, sync_period=row.k, prune_keep=None if keep == 1 else keep, **_RESNET)


def _shared(name, model, paper_epochs, **kw):
    s = SHARED_VALUE[model]
    return _paper(name, model=model, paper_epochs=paper_epochs, shared_value=s["value"],
                  shared_keep=s["keep"], **_FC, **kw)


#: The paper's experiments at paper scale, plus two of ours: ``conv7_k20``
#: (the authors' notebook's k) and ``f2_per_unit`` (a control: F2 with every
#: unit keeping the same number of connections; the paper's Bernoulli mask
#: leaves the output classes unequally connected, which LaPerm cannot change).
EXPERIMENTS: dict[str, ExperimentConfig] = {
    "conv7": _paper("conv7", sync_period=ROWS["conv7"].k, **_CONV7),
    "conv7_k20": _paper("conv7_k20", sync_period=NOTEBOOK_K["conv7"], **_CONV7),
    "conv2": _paper("conv2", model="conv2", **_CIFAR_CONV),
    "conv4": _paper("conv4", model="conv4", **_CIFAR_CONV),
    "conv13": _paper("conv13", model="conv13", **_CIFAR_CONV),
    "resnet50": _resnet("resnet50"),
    "resnet50_p30": _resnet("resnet50_p30"),
    "resnet50_p50": _resnet("resnet50_p50"),
    "resnet50_p70": _resnet("resnet50_p70"),
    "f1": _shared("f1", "f1", 10),
    "f2": _shared("f2", "f2", 25),
    "f2_per_unit": _shared("f2_per_unit", "f2", 25, shared_mask="per_unit"),
}


def laperm_settings(experiment: str) -> dict:
    """LaPerm's keyword arguments (k, which variables are permuted) of one experiment.

    Also takes ``"<experiment>_notebook"`` for the notebooks' k (``conv7``,
    ``resnet50``) and ``"resnet50_pruned"``.
    """
    base, _, variant = experiment.partition("_")
    if experiment in EXPERIMENTS:
        cfg = EXPERIMENTS[experiment]
        k = cfg.sync_period
    elif variant == "notebook" and base in NOTEBOOK_K:
        cfg, k = EXPERIMENTS[base], NOTEBOOK_K[base]
    elif experiment == "resnet50_pruned":
        cfg = EXPERIMENTS["resnet50_p30"]
        k = cfg.sync_period
    else:
        valid = sorted([*EXPERIMENTS, *(f"{b}_notebook" for b in NOTEBOOK_K), "resnet50_pruned"])
        raise ValueError(f"Unknown LaPerm preset {experiment!r}; valid names: {', '.join(valid)}.")
    return dict(sync_period=k, skip_bias=cfg.skip_bias, skip_bn=cfg.skip_bn)


#: LaPerm keyword arguments (sync period and which variables are permuted).
LAPERM_PRESETS: dict[str, dict] = {
    name: laperm_settings(name)
    for name in ("conv7", "conv7_notebook", "conv2", "conv4", "conv13", "resnet50",
                 "resnet50_notebook", "resnet50_pruned", "f1", "f2")
}


def laperm_preset(name: str) -> dict:
    """The LaPerm keyword arguments of one paper experiment.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return dict(LAPERM_PRESETS[name])
    except KeyError:
        raise ValueError(
            f"Unknown LaPerm preset {name!r}; valid names: "
            f"{', '.join(sorted(LAPERM_PRESETS))}."
        ) from None


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


def results_table():
    """The paper's results table as a pandas DataFrame (one row per experiment)."""
    import pandas as pd

    return pd.DataFrame([row.__dict__ for row in TABLE])


def settings_table():
    """The paper's table as a reader sees it: each row with its data, initial weights, p, k,
    epochs, section and reported accuracy (numbers, for a formatter to show)."""
    import pandas as pd

    return pd.DataFrame({
        "row": [row.model + (f", p = {row.pruned:.0%}" if row.model == "ResNet50" and row.pruned
                             else "") for row in TABLE],
        "data": [{"mnist": "MNIST", "cifar10": "CIFAR-10"}[row.dataset] for row in TABLE],
        "initial weights": [row.init for row in TABLE],
        "pruned": [row.pruned for row in TABLE],
        "k": [row.k for row in TABLE],
        "epochs": [EXPERIMENTS[row.experiment].paper_epochs for row in TABLE],
        "section": [row.section for row in TABLE],
        "paper top-1": [row.accuracy for row in TABLE],
    })
