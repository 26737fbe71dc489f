"""The runs of a Section 5 page: their configs at the page's scale, their test set, and
the extra evaluations of the committed runs it shows.

A Section 5 page trains the paper's configs (:func:`laperm.paper.paper_config`)
scaled down to its profile (:func:`page_configs`, with Adam baselines), prints
one line per run (:func:`print_configs`), says which test set its accuracies
are on (:func:`show_test_set`), and shows the committed runs' three
evaluations of each epoch (:func:`show_three_evaluations`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


from laperm import data, pruning, viz
from laperm.analysis import comparisons, records, verdict
from laperm.analysis.verdict import binomial_se
from laperm.book.layout import reference_dir as reference_dir_of
from laperm.book.layout import results_dir
from laperm.analysis.labels import experiment_label, short_run_label
from laperm.book.page import plot_curves
from laperm.book.tables import show_frame, three_evaluations_display
from laperm.paper import EXPERIMENTS, PAPER_ACCURACY, TRAIN_IMAGES, paper_config

#: The parameters of a page that scale its runs: ``ExperimentConfig`` fields a profile sets.
SCALE_FIELDS = ("epochs", "train_fraction", "validation_size", "sync_period", "preprocessing")


def profile_scale(params: dict) -> dict:
    """The :data:`SCALE_FIELDS` a page's parameters set (``None``: the paper's value)."""
    return {name: params[name] for name in SCALE_FIELDS if params.get(name) is not None}


def adam_label(label: str) -> str:
    """The label of a LaPerm run's Adam baseline: ``"conv2 LaPerm k=50"`` -> ``"conv2 Adam"``."""
    return label.split("LaPerm")[0] + "Adam"


def page_configs(variants: dict, params: dict, adam: bool | dict | None = None) -> dict:
    """A page's runs: its LaPerm configs at the page's scale, and their Adam baselines.

    Args:
        variants: ``{label: ExperimentConfig}`` at the paper's settings (or a
            variant of them, e.g. another k).
        params: the page's parameters (``sec.params``); those of
            :data:`SCALE_FIELDS` that are not None replace the configs' values.
        adam: where the Adam baselines go (``cfg.adam_baseline()``, the same
            run trained by plain Adam, the paper's comparison): ``True``, one
            right after each variant, labelled :func:`adam_label`;
            ``{label: config}``, these configs, scaled, after all variants;
            ``None`` or ``False``, none.

    Returns:
        ``{label: ExperimentConfig}`` in the order the page shows them.
    """
    scale = profile_scale(params)
    configs = {}
    for label, cfg in variants.items():
        configs[label] = cfg.replace(**scale)
        if adam is True:
            configs[adam_label(label)] = configs[label].adam_baseline()
    if isinstance(adam, dict):
        configs.update({label: cfg.replace(**scale).adam_baseline() for label, cfg in adam.items()})
    return configs


def sync_period_config(name: str, k: int):
    """The paper's config of ``name`` with sync period ``k`` (Sections 5.1 and 5.3).

    The paper's own variant when there is one (``conv7_k20``, the authors'
    Conv7 notebook), the paper's config when ``k`` is its k, else the paper's
    config renamed ``<name>_k<k>``.
    """
    cfg = paper_config(name)
    if k == cfg.sync_period:
        return cfg
    try:
        return paper_config(f"{name}_k{k}")
    except (KeyError, ValueError):
        return cfg.replace(name=f"{name}_k{k}", sync_period=k)


def dense_f2(k: int | None = None):
    """F2 from an ordinary dense He-uniform θ0 (no shared value), named ``f2_dense[_k<k>]`` (Section 5.3)."""
    cfg = paper_config("f2").replace(shared_value=None, shared_keep=None, name="f2_dense")
    return cfg if k is None else cfg.replace(name=f"f2_dense_k{k}", sync_period=k)


def pruned_config(model: str, p: int):
    """A LaPerm config with ``p`` % of the kernel weights pruned at random before training (Section 5.4).

    ``"resnet50"``: the paper's configs (``resnet50``, ``resnet50_p30``, ...,
    with their own k); ``"conv7"``: Conv7 on MNIST with the same pruning rule;
    another CIFAR ResNet (``"resnet20"``): the ResNet50 recipe on that model.
    """
    keep = pruning.keep_for_pruned_percent(p) if p else None
    if model == "resnet50":
        return paper_config("resnet50" if p == 0 else f"resnet50_p{p}")
    if model == "conv7":
        return paper_config("conv7").replace(name=f"conv7_p{p}", prune_keep=keep)
    return paper_config("resnet50_p30").replace(model=model, name=f"{model}_p{p}",
                                                prune_keep=keep)


#: The masks of F2's control (Section 5.5): ``{experiment: label}``.
F2_MASKS = {"f2": "paper", "f2_per_unit": "per-unit"}


def mask_control(seeds, **changes) -> dict:
    """F2 with the paper's mask and with our per-unit control, for each seed (Section 5.5).

    Returns:
        ``{"F2 paper mask, seed 0": config, "F2 per-unit mask, seed 0": config, ...}``,
        each ``paper_config(name, seed=seed).replace(**changes)``.
    """
    return {f"F2 {mask} mask, seed {seed}": paper_config(name, seed=seed).replace(**changes)
            for seed in seeds for name, mask in F2_MASKS.items()}


def _keep_text(cfg) -> str:
    keep = cfg.shared_keep if isinstance(cfg.shared_keep, tuple) else (cfg.shared_keep,)
    return f"v = {cfg.shared_value}, keep = {', '.join(f'{x:.3f}' for x in keep)}"


#: What :func:`print_configs` can add to a run's line: ``{name: cfg -> text}``.
CONFIG_DETAILS = {
    "validation": lambda cfg: f"validation split {cfg.validation_size} images",
    "pruning": lambda cfg: "dense" if cfg.prune_keep is None else f"keep {cfg.prune_keep:.2f}",
    "shared value": _keep_text,
}


def config_lines(configs: dict, details: Iterable[str] = ()) -> list[str]:
    """One line per run: ``"<label>: <cfg.describe()>; <detail>; ..."``, labels right-aligned.

    Args:
        configs: ``{label: ExperimentConfig}``.
        details: names of :data:`CONFIG_DETAILS` to add to every line.
    """
    width = max((len(label) for label in configs), default=0)
    return ["; ".join([f"{label:>{width}}: {cfg.describe()}",
                       *(CONFIG_DETAILS[d](cfg) for d in details)])
            for label, cfg in configs.items()]


def print_configs(configs: dict, details: Iterable[str] = ()) -> None:
    """Print :func:`config_lines`."""
    print("\n".join(config_lines(configs, details)))


def test_set_note(configs: dict) -> str:
    """Markdown: the test set and the preprocessing of a page's runs.

    For each dataset the runs use, :func:`laperm.data.describe` names the test
    set; a reduced one (offline CIFAR-10: the first 1000 exact test images)
    adds the binomial standard error of a test accuracy between 40 % and 90 %
    on it. Each preprocessing is named with its description.
    """
    parts = []
    for name in dict.fromkeys(cfg.dataset for cfg in configs.values()):
        info = data.describe(name)
        text = f"**Test set:** {info.test_note}."
        if info.is_reduced_test_set:
            low, high = (100 * binomial_se(a, info.n_test) for a in (0.9, 0.5))
            text += (" Only these exact images are available offline (the rest exist here only "
                     "as lossy JPEG, never used for test accuracy), so a test accuracy between "
                     f"40 % and 90 % has a standard error of {low:.2g} to {high:.2g} points.")
        parts.append(text)
    for name in dict.fromkeys(cfg.preprocessing for cfg in configs.values()):
        parts.append(f"**Preprocessing:** `{name}`: {data.PREPROCESSORS[name][1]}.")
    return " ".join(parts)


def show_test_set(configs: dict) -> None:
    """Display :func:`test_set_note` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(test_set_note(configs)))


def plot_curves_per_model(runs: dict, names, paper_label: str = "paper ({name})") -> None:
    """:func:`laperm.book.plot_curves` of each model's runs (labels ``"<name> ..."``), shown.

    Args:
        runs: ``{label: (history, result)}``.
        names: the models, as the labels start (``"conv2"``, ``"F1"``).
        paper_label: the label of the paper's line (``{name}``: the model);
            the number is ``PAPER_ACCURACY[name.lower()]``.
    """
    for name in names:
        subset = {label: run for label, run in runs.items() if label.startswith(f"{name} ")}
        plot_curves(subset, paper_lines={paper_label.format(name=name):
                                         PAPER_ACCURACY[name.lower()]}, suptitle=name)


def three_evaluation_histories(stored: dict, longest: bool = False) -> dict:
    """The committed LaPerm histories that have the three evaluations of each epoch.

    Args:
        stored: ``{folder: (history, result)}`` (:func:`laperm.book.show_stored_runs`).
        longest: keep only the longest run of each experiment and variant
            (input, precision).

    Returns:
        ``{title: history}``, the title the run's short label, with its number of epochs
        where the label does not say it (``"Conv2 LaPerm s0 (bf16): 125 epochs"``,
        ``"Conv4 LaPerm s0 (5 ep., H200)"``).
    """
    three, best = {}, {}
    for folder, (history, result) in stored.items():
        if result["optimizer"] != "laperm" or not records.has_three_evaluations(history):
            continue
        label = short_run_label(folder)
        title = label if " ep." in label else f"{label}: {len(history)} epochs"
        three[title] = history
        settings = records.run_settings(result)
        key = (settings["experiment"], settings["variant"])
        if key not in best or len(history) > len(best[key][1]):
            best[key] = (title, history)
    return dict(best.values()) if longest else three


def show_three_evaluations(stored: dict, longest: bool = False) -> None:
    """The three evaluations of each LaPerm epoch of committed runs: a figure and tables.

    Synchronised with re-estimated BatchNorm statistics (the book's number),
    synchronised with stale statistics, and unsynchronised
    (:func:`laperm.viz.plot_three_evaluations`), then
    :func:`laperm.analysis.comparisons.three_evaluations_table` at a few
    epochs for every run (``longest``: for the longest run of each model,
    input or precision).
    """
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    # the figure: the longest run of each model, input and precision (small multiples)
    shown, every = (three_evaluation_histories(stored, longest=True),
                    three_evaluation_histories(stored))
    fig = viz.plot_three_evaluations(shown)
    if fig is None:
        display(Markdown("_No committed LaPerm record of these models has the three evaluations "
                         "yet._"))
        return
    plt.show()
    if len(shown) < len(every):
        display(Markdown(f"_The figure shows the longest run of each model, input and "
                         f"precision: {len(shown)} of the {len(every)} runs that record the "
                         "three evaluations._"))
    if longest:
        display(Markdown("The longest run of each model (and of each input or precision), at a "
                         "few epochs; the learning rate decays, so the gap should shrink:"))
    for title, history in three_evaluation_histories(stored, longest).items():
        display(Markdown(f"**{title}**" if longest else
                         f"**{title}**, at a few epochs (the learning rate decays, so the gap "
                         "should shrink):"))
        show_frame(three_evaluations_display(comparisons.three_evaluations_table(history)))


def unsynced_note(unsynced: dict) -> str:
    """Markdown: the stored LaPerm runs that never synced (:func:`laperm.analysis.records.unsynced_runs`)."""
    if not unsynced:
        return "Every stored LaPerm run synced at least once."
    return ("Stored LaPerm runs that **never synced** while training (they trained as Adam "
            "and were scored after one sync, when evaluated; the *paper* column above does "
            "not apply to them): "
            + "; ".join(short_run_label(name) + text.removeprefix(name) if text.startswith(name)
                        else text for name, text in unsynced.items()) + ".")


def paper_scale_steps(experiment: str, held_out: int = 0) -> str:
    """One line: the steps and syncs of a run of ``experiment`` at the paper's scale.

    E.g. ``"paper scale: 125 epochs of 50,000 images, batch 50: 125,000 steps,
    125 syncs with k = 1000"`` (the paper's epochs, every training image but
    ``held_out``, e.g. a validation split).
    """
    cfg = EXPERIMENTS[experiment]
    images = TRAIN_IMAGES[cfg.dataset] - held_out
    steps = -(-images // cfg.batch_size) * cfg.paper_epochs
    return (f"paper scale: {cfg.paper_epochs} epochs of {images:,} images, batch "
            f"{cfg.batch_size}: {steps:,} steps, {steps // cfg.sync_period} syncs with k = "
            f"{cfg.sync_period}")


def paper_scale_hours(models):
    """:func:`laperm.analysis.verdict.paper_scale_hours` of the committed records, for ``models``,
    as a table to read (a pandas ``Styler``: no index, the model's name, images per second
    rounded, hours to 0.1).

    The hours one paper-scale run of each model takes at the rate the
    committed runs trained, per device.
    """
    hours = verdict.paper_scale_hours(records.load_records(results_dir()))
    hours = hours[hours["model"].isin(list(models))].reset_index(drop=True)
    hours = hours.assign(model=hours["model"].map(experiment_label)).rename(
        columns={"images_per_s": "images per second", "hours": "hours per paper-scale run"})
    return hours.style.hide(axis="index").format(
        {"images per second": "{:,.0f}", "hours per paper-scale run": "{:.1f}"})


def authors_file(name: str, reference_dir=None) -> Path | None:
    """The authors' published weight file ``name`` (e.g. ``"F2.h5"``), or None, saying so.

    Looks in :func:`laperm.book.reference_dir` (``reference_dir``,
    ``$LAPERM_REFERENCE_DIR`` or ``../shared/reference/pretrained``); when the
    file is not there, prints where to get it.
    """
    ref = reference_dir_of(reference_dir)
    if ref is not None and (ref / name).is_file():
        return ref / name
    print(f"The authors' {name} was not found (set reference_dir or $LAPERM_REFERENCE_DIR; "
          "the file is in https://github.com/ihsuy/Train-by-Reconnect).")
    return None
