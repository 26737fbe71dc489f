"""The page API: what the book's pages call (``from laperm import book``).

Every page of ``book/`` starts with a papermill ``parameters`` cell
(``profile = "cpu"`` and every other parameter ``= None``), then calls
:func:`setup`, which starts the kernel quietly, fills the ``None`` parameters
from the chosen profile, shows the scale banner and starts the section's
clock.  The last cell calls :func:`finish`, which writes the section's status
record (profile, parameters, hardware, wall time, date, commit) read by the
status page.

Training runs of a page go to ``<build>/runs/<profile>/<folder>``, the folder
named by :func:`run_folder`: the name :func:`laperm.reproduce.run_name` gives
the run in ``results/``, and the config's hash (the book's configs are scaled
down in ways the name does not say).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laperm import experiment, viz
from laperm.analysis import comparisons, records
from laperm.analysis.labels import (duration, experiment_label, settings_label,
                                   short_run_labels)
from laperm.atomic import atomic_write_json
from laperm.book.display import show_figures_fitted
from laperm.book.knobs import PROFILE_DESCRIPTIONS, PROFILE_NAMES, check_parameters
from laperm.book.layout import build_dir, results_dir, status_dir
from laperm.book.tables import (COLUMN_FORMATS, MAX_COLUMNS, column_chunks, reader_words,
                                 split_constant_columns, yes_no_columns)
from laperm.config import experiment_name
from laperm.paper import PAPER_ACCURACY
from laperm.reproduce import run_name
from laperm.run.hardware import bfloat16_in
from laperm.run.provenance import environment_info


def run_folder(cfg) -> str:
    """The folder name of a book run: ``<run_name(cfg)>-<cfg.hash>``.

    E.g. ``conv7_laperm_s0_e1_f10-3f2a9c0d1b7e``: the same name as the run's
    folder in ``results/`` (:func:`laperm.reproduce.run_name`), then the
    config's hash, which tells apart configs the name does not (a smaller
    validation split, another learning rate, ...).
    """
    return f"{run_name(cfg)}-{cfg.hash}"


def quiet_kernel() -> None:
    """Start TensorFlow quietly (no info logs, no UserWarnings) in a page's kernel."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=UserWarning)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        tf.get_logger().setLevel("ERROR")


@dataclass
class Section:
    """What :func:`setup` returns: the resolved parameters of one execution.

    Attributes:
        section: the notebook's name (e.g. ``"05_1_conv7_mnist"``).
        profile: ``"smoke"``, ``"cpu"`` or ``"paper"``.
        params: every parameter after filling ``None`` from the profile.
        overridden: the names given explicitly (papermill ``-p``).
    """

    section: str
    profile: str
    params: dict
    overridden: list
    started: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    scale_notes: list = field(default_factory=list)
    run_scales: list = field(default_factory=list)
    skipped_parts: list = field(default_factory=list)  # laperm.book.inputs
    missing_inputs: list = field(default_factory=list)
    banner_handle: Any = None

    def __getattr__(self, name):
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(
                f"Section {self.__dict__.get('section')!r} has no parameter {name!r}; "
                f"parameters: {', '.join(self.__dict__.get('params', {}))}"
            ) from None

    def run_dir(self, run) -> Path:
        """The folder of one experiment run of this section and profile.

        Args:
            run: an ``ExperimentConfig`` (its folder is :func:`run_folder`) or
                a folder name.

        Runs resume from there, so re-executing a section reuses finished runs.
        """
        name = run if isinstance(run, str) else run_folder(run)
        path = build_dir() / "runs" / self.profile / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def note_scale(self, text: str) -> None:
        """Add a line to the status record (e.g. a run's scale label)."""
        self.scale_notes.append(text)

    def run_all(self, configs: dict) -> dict:
        """Train (or reload, when finished before) every experiment config.

        Args:
            configs: ``{label: ExperimentConfig}``.

        Returns:
            ``{label: (history, result)}`` from :func:`laperm.experiment.run`;
            prints one line per run and notes each run's scale.
        """
        runs = {}
        for label, cfg in configs.items():
            self.note_scale(f"{cfg.name}: {cfg.scale_label}")
            self.run_scales.append(cfg.scale_label)
            runs[label] = experiment.run(cfg, self.run_dir(cfg), progress=False)
            result = runs[label][1]
            print(f"{label}: {cfg.scale_label}; test accuracy at the best validation epoch "
                  f"{result['test_accuracy_at_best_val']:.2%}; {duration(result['wall_time_s'])}")
        update_banner(self)
        return runs


#: How papermill's injected cell starts (its Python translator's comment).
_INJECTED = "# Parameters"


def injected_parameters() -> set[str]:
    """The names papermill injected into this kernel (its ``# Parameters`` cell), if any.

    Papermill only warns about a parameter the notebook does not declare and
    runs the notebook anyway; :func:`setup` refuses it.
    """
    import ast

    try:
        from IPython import get_ipython
    except ImportError:
        return set()
    shell = get_ipython()
    if shell is None:
        return set()
    names = set()
    for source in shell.user_ns.get("In", []):
        if isinstance(source, str) and source.startswith(_INJECTED):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            names |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                      for target in node.targets if isinstance(target, ast.Name)}
    return names


def setup(section: str, profile: str, profiles: dict[str, dict], overrides: dict[str, Any],
          show_banner: bool = True) -> Section:
    """Start the kernel quietly, resolve a page's parameters and show its scale banner.

    Args:
        section: the notebook's name.
        profile: the chosen profile name.
        profiles: ``{profile: {parameter: value}}`` defaults, defined in the
            notebook itself so a reader sees them.
        overrides: the notebook's parameters as set in its parameters cell
            (``None`` means "take the profile's value"), or the page's
            ``globals()``, from which the names of the profile table are read.
        show_banner: display the banner (Markdown) in the notebook.

    Raises:
        ValueError: unknown profile (the message lists the valid ones), a
            parameter missing from the profile table, a parameter papermill
            injected that the section does not have, or a value of the wrong
            type or range (see :data:`KNOBS`).
    """
    quiet_kernel()
    show_figures_fitted()
    if "__name__" in overrides:  # the page's namespace: its parameters are the table's names
        names = dict.fromkeys(name for values in profiles.values() for name in values)
        overrides = {name: overrides.get(name) for name in names}
    if profile not in PROFILE_NAMES:
        raise ValueError(f"Unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}.")
    strangers = sorted(injected_parameters() - set(overrides) - {"profile"})
    if strangers:
        raise ValueError(
            f"Section {section!r} has no parameter(s) {', '.join(strangers)}; its parameters: "
            f"profile, {', '.join(overrides)}.")
    missing = [p for p in PROFILE_NAMES if p not in profiles]
    if missing:
        raise ValueError(f"Section {section!r} defines no values for profile(s) {missing}.")
    defaults = dict(profiles[profile])
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"Parameter(s) {unknown} of section {section!r} have no value in profile {profile!r}."
        )
    overrides = check_parameters(overrides, section)
    params, overridden = {}, []
    for name, default in defaults.items():
        value = overrides.get(name)
        if value is None:
            params[name] = default
        else:
            params[name] = value
            overridden.append(name)
    sec = Section(section=section, profile=profile, params=params, overridden=overridden)
    if show_banner:
        banner(sec)
    return sec


def scale_summary(labels) -> str | None:
    """What the scale labels of a page's runs say together (None without runs).

    ``"paper scale (all 4 runs)"``, ``"reduced (all 2 runs): 1 of 10 epochs, ..."``
    or ``"3 runs at paper scale, 2 reduced"``: a banner never calls a page's
    runs reduced when they are at the paper's settings, or the other way round.
    """
    labels = list(labels)
    if not labels:
        return None
    paper = [label for label in labels if label == "paper scale"]
    other = sorted({label for label in labels if label != "paper scale"})
    all_reduced = all(label.startswith("reduced: ") for label in other)
    other_text = "; ".join(label.removeprefix("reduced: ") if all_reduced else label
                           for label in other)
    kind = "reduced" if all_reduced else "not at the paper's scale"
    runs = lambda n: "1 run" if n == 1 else f"all {n} runs"  # noqa: E731
    if not other:
        return f"paper scale ({runs(len(paper))})"
    if not paper:
        return f"{kind} ({runs(len(labels))}): {other_text}"
    return f"{len(paper)} of {len(labels)} runs at paper scale, the others {kind}: {other_text}"


def banner_text(sec: Section, scale: str | None = None) -> str:
    """The banner's Markdown: profile, scale and overridden parameters.

    Args:
        sec: the section.
        scale: the scale line; default: :func:`scale_summary` of the runs the
            page has trained so far (none: no scale line).
    """
    lines = [f"**Profile `{sec.profile}`** — {PROFILE_DESCRIPTIONS[sec.profile]}."]
    scale = scale or scale_summary(sec.run_scales)
    if scale:
        lines.append(f"Scale: **{scale}**.")
    if sec.overridden:
        shown = ", ".join(f"`{k}={sec.params[k]!r}`" for k in sec.overridden)
        lines.append(f"Overridden parameters: {shown}.")
    lines.append(
        f"Executed {sec.started_at}; re-run with `laperm run {sec.section} --profile {sec.profile}`."
    )
    return "\n".join(f"> {line}\n>" for line in lines).rstrip(">").rstrip()


def banner(sec: Section, scale: str | None = None) -> None:
    """Display the banner in a notebook (printed outside IPython).

    The banner is displayed with a display id, so :func:`update_banner` can
    add the scale of the runs the page trains later to the banner at its top.
    """
    text = banner_text(sec, scale)
    try:
        from IPython.display import Markdown, display

        sec.banner_handle = display(Markdown(text), display_id=True)
    except ImportError:  # pragma: no cover
        print(text)


def update_banner(sec: Section, scale: str | None = None) -> None:
    """Rewrite the banner shown by :func:`banner` with the scale of the page's runs."""
    if sec.banner_handle is None:
        return
    from IPython.display import Markdown

    sec.banner_handle.update(Markdown(banner_text(sec, scale)))


def finish(sec: Section, extra: dict | None = None) -> dict:
    """Write the section's status record for the status page and return it."""
    env = environment_info()
    record = {
        "section": sec.section,
        "profile": sec.profile,
        "params": sec.params,
        "overridden": sec.overridden,
        "scale_notes": sec.scale_notes,
        "skipped_parts": sec.skipped_parts,
        "missing_inputs": sec.missing_inputs,
        "wall_time_s": round(time.perf_counter() - sec.started, 1),
        "started_at": sec.started_at,
        **env,
        **(extra or {}),
    }
    path = status_dir()
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / f"{sec.section}.json", record, default=str)
    return record


def load_status() -> list[dict]:
    """Every section's latest status record."""
    path = status_dir()
    if not path.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(path.glob("*.json"))]


#: Which columns of a run table stay when there are too many, most important first.
_COLUMN_PRIORITY = ("test acc at best val", "optimizer", "paper", "k", "p", "final test acc",
                    "scale", "wall time", "seed", "syncs", "hardware", "best val acc",
                    "best test acc, any epoch", "paper row", "date")


def section_columns(df, limit: int = MAX_COLUMNS - 1):
    """``(df with at most limit columns, [the names of the columns left out])``.

    The columns kept are the first ``limit`` of :data:`_COLUMN_PRIORITY` (then
    any other, in order) and keep their order in ``df``; a section page's table
    then fits its column (:data:`MAX_COLUMNS` with the row labels).
    """
    if len(df.columns) <= limit:
        return df, []
    rank = {c: i for i, c in enumerate(_COLUMN_PRIORITY)}
    ordered = sorted(df.columns, key=lambda c: rank.get(c, len(rank)))
    keep = set(ordered[:limit])
    return df[[c for c in df.columns if c in keep]], [c for c in df.columns if c not in keep]


def show_table(df) -> None:
    """Display a :func:`laperm.analysis.comparisons.results_table` with percentages.

    Columns with the same value in every row become the caption; the step
    count is left out (the scale says how long each run was); wall times are
    read in seconds, minutes or hours; yes/no instead of True/False; at most
    :data:`MAX_COLUMNS` columns are shown (:func:`section_columns`), the caption
    names the others.  Row labels (the run names) are the first column, under
    their name: one header row, no index column.
    """
    import html

    import pandas as pd
    from IPython.display import display

    df = df.drop(columns=[c for c in ("steps",) if c in df.columns])
    if "optimizer" in df.columns:
        df = df.assign(optimizer=df["optimizer"].replace({"LaPerm (inner Adam)": "LaPerm"}))
    if "wall time (s)" in df.columns:
        df = df.assign(**{"wall time (s)": df["wall time (s)"].map(duration)}).rename(
            columns={"wall time (s)": "wall time"})
    df, caption = split_constant_columns(df)
    df, left_out = section_columns(df)
    caption = " ".join(filter(None, [
        caption and f"All rows: {caption}.",
        left_out and ("Not shown here: " + ", ".join(left_out)
                      + " (page 7.1 lists every column of the committed runs).")]))
    if not isinstance(df.index, pd.RangeIndex):  # the run names: a column of their own
        df = df.rename_axis(df.index.name or "run").reset_index()
    df = yes_no_columns(df)
    style = df.style.format({k: v for k, v in COLUMN_FORMATS.items() if k in df.columns}, na_rep="—")
    # Run names are long and have no spaces: let the browser break them after
    # an underscore, so that a table of many runs fits the page's column.
    style = style.format(lambda name: html.escape(str(name)).replace("_", "_<wbr>"),
                         subset=[df.columns[0]]).hide(axis="index")
    if caption:
        style = style.set_caption(caption)
    display(style)


def hardware_label(hardware: dict | None) -> str:
    """``"CPU, 2 cores"`` or the accelerator's name, from a record's ``hardware``.

    Records that name the CPU add its model and whether it computes bfloat16
    natively (``"CPU, 2 cores (AMD EPYC; no native bfloat16)"``).
    """
    hardware = hardware or {}
    accelerator = hardware.get("accelerator") or "?"
    if not accelerator.startswith("none"):
        return accelerator
    label = f"CPU, {hardware.get('cpu_count', '?')} cores"
    if hardware.get("cpu"):
        native = bfloat16_in(hardware.get("cpu_features"))
        detail = hardware["cpu"]
        if native is not None:
            detail += "; native bfloat16" if native else "; no native bfloat16"
        label += f" ({detail})"
    return label


def stored_runs_title(results: list[dict], curves: dict) -> str:
    """The title of the stored runs' curves, from the records it shows.

    Says "paper scale" or "reduced" only as the records are, names their
    hardware, and mentions the seed band only when a curve averages several
    seeds.
    """
    scales = {"reduced" if r["scale"]["is_reduced"] else "paper scale" for r in results}
    scale = scales.pop() if len(scales) == 1 else "paper scale and reduced"
    hardware = ", ".join(sorted({hardware_label(r.get("hardware")) for r in results}))
    title = f"committed runs ({scale}; {hardware})"
    if any(len(histories) > 1 for histories in curves.values()):
        title += "; several seeds: mean, band = standard deviation"
    return title


def show_compact(df, precision: int = 3, caption: str = "", percent=()) -> None:
    """Display a table of numbers compactly: ``precision`` decimals, constant columns
    as the caption, no index column of its own (row labels are the first columns, their
    names the headers: one header row), so wide score tables fit the page.

    Args:
        df: the table.
        precision: decimals of the numbers.
        caption: a sentence above the table (constant columns are added to it).
        percent: columns of fractions (accuracies) to show as percentages, 2 decimals.
    """
    import pandas as pd
    from IPython.display import display

    df, constant = split_constant_columns(reader_words(df))
    turned = len(df.columns) + 1 > MAX_COLUMNS and len(df) <= 3 and df.index.is_unique
    if turned:  # a wide table of a few rows reads better turned: one row per column
        df = df.T.rename_axis(None).rename(columns=str)
    labels = 0  # the columns that name a row: the row labels, as the first columns
    if not isinstance(df.index, pd.RangeIndex):
        # row labels become columns, their names the headers: no second header row
        labels = df.index.nlevels
        unnamed = (" " * i for i in range(labels))  # blank headers, each its own
        df = df.rename_axis([name or next(unnamed) for name in df.index.names]).reset_index()
    text = "; ".join(t for t in (caption, f"all rows: {constant}" if constant else "") if t)
    # a wide table: several, each at most MAX_COLUMNS wide, each with the row labels
    for i, chunk in enumerate(column_chunks(df, MAX_COLUMNS, keys=max(labels, 1))):
        style = chunk.style.format(precision=precision, na_rep="—").hide(axis="index")
        if turned:  # the percent "columns" are rows now, named in the first column
            rows = chunk.index[chunk.iloc[:, 0].isin(list(percent))]
            if len(rows):
                style = style.format("{:.2%}", na_rep="—",
                                     subset=pd.IndexSlice[rows, list(chunk.columns[1:])])
        elif shares := [c for c in percent if c in chunk.columns]:
            style = style.format("{:.2%}", subset=shares, na_rep="—")
        if text and i == 0:
            style = style.set_caption(text[0].upper() + text[1:] + ".")
        display(style)


#: The most curves a figure draws: more cannot have colours a reader tells apart.
MAX_CURVES = 8


def stored_curves(found: dict) -> dict:
    """``{legend label: [history of each seed]}`` of committed runs: the seeds of one
    experiment, optimizer, scale and settings together (a curve averages them).

    Labels are short: ``"Conv2 LaPerm (91 of 125 epochs)"``, ``"Conv2 Adam [bf16]"``.
    """
    curves: dict = {}
    for history, result in found.values():
        if history is not None:
            label = (f"{experiment_label(experiment_name(result['name']))} "
                     f"{'LaPerm' if result['optimizer'] == 'laperm' else 'Adam'}")
            if result["scale"]["is_reduced"]:  # never average over different scales
                label += f" ({result['scale']['label'].removeprefix('reduced: ')})"
            variant = records.run_settings(result)["variant"]
            if variant:  # nor over inputs or precisions
                label += f" [{settings_label(variant)}]"
            curves.setdefault(label, []).append(history)
    return curves


def curves_shown(curves: dict, limit: int = MAX_CURVES) -> list:
    """The labels of :func:`stored_curves` a figure draws: all of them when they are at
    most ``limit``; else first the longest curve of each model and optimizer (the label
    up to ``LaPerm`` or ``Adam``), then the longest others, ``limit`` in all, in their order."""
    import re

    if len(curves) <= limit:
        return list(curves)
    epochs = {label: max(len(h) for h in histories) for label, histories in curves.items()}
    by_length = sorted(curves, key=lambda label: -epochs[label])
    group = {label: (re.match(r"(.*? (?:LaPerm|Adam))\b", label) or [label])[0]
             for label in curves}
    first = list({group[label]: label for label in reversed(by_length)}.values())
    chosen = sorted(first, key=lambda label: -epochs[label])[:limit]
    chosen += [label for label in by_length if label not in chosen][:limit - len(chosen)]
    return [label for label in curves if label in set(chosen)]


def show_stored_runs(names, paper_names: dict | None = None, root=None) -> dict:
    """Show the committed records of long runs: a table, a seed summary, curves.

    The "paper scale" part of a Section 5 page: runs made with
    ``python -m laperm.reproduce`` and committed under ``results/``, shown with
    their scale, seed, hardware and date.

    Args:
        names: experiment names (e.g. ``["conv7", "conv7_k20"]``); their Adam
            baselines are found too.
        paper_names: ``{experiment: key of PAPER_ACCURACY}`` where they differ.
        root: the records' folder (default :func:`results_dir`).

    Returns:
        ``{folder name: (history, result)}`` of the records shown.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    from IPython.display import Markdown, display

    found = records.stored_runs(names, root or results_dir())
    if not found:
        display(Markdown(
            "No finished record of these experiments (" + ", ".join(f"`{n}`" for n in names)
            + ") is committed under `results/` yet, so this page only shows the runs "
            "executed above."))
        return found
    paper_names = paper_names or {}
    paper_of = {folder: paper_names.get(r["name"], r["name"]) for folder, (_, r) in found.items()}
    table = comparisons.results_table(found, paper_of)
    results = [r for _, r in found.values()]
    table["hardware"] = [hardware_label(r.get("hardware")) for r in results]
    table["date"] = [str(r.get("date", "?"))[:10] for r in results]
    show_table(table.set_axis(pd.Index(short_run_labels(table.index), name="run")))
    # Several seeds of one experiment: mean and standard deviation (never over
    # different inputs or precisions: the run names carry them, records.variant).
    table["experiment"] = [experiment_name(r["name"]) for r in results]
    table["variant"] = [records.run_settings(r)["variant"] for r in results]
    groups = table.groupby(["experiment", "optimizer", "scale", "variant"], sort=False)
    if groups.size().max() > 1:
        summary = groups["test acc at best val"].agg(["count", "mean", "std"])
        summary.columns = ["seeds", "test acc at best val: mean", "sd"]
        summary["paper"] = groups["paper"].first()
        summary = summary.reset_index().rename(columns={"variant": "settings"})
        summary["settings"] = summary["settings"].map(settings_label)
        summary["experiment"] = summary["experiment"].map(experiment_label)
        summary["optimizer"] = summary["optimizer"].replace({"LaPerm (inner Adam)": "LaPerm"})
        display(summary.style.format({"test acc at best val: mean": "{:.2%}", "sd": "{:.2%}",
                                      "paper": "{:.2%}"}, na_rep="—").hide(axis="index"))
    # Curves: the seeds of one experiment and optimizer are averaged (band: sd).
    curves = stored_curves(found)
    if curves:
        shown = curves_shown(curves)
        paper_lines = {f"paper ({experiment_label(key)})": PAPER_ACCURACY[key]
                       for folder, key in paper_of.items()
                       if key in PAPER_ACCURACY and found[folder][1]["optimizer"] == "laperm"}
        title = stored_runs_title(results, curves)
        if len(shown) < len(curves):
            title += (f"; the longest {len(shown)} of {len(curves)} curves "
                      "(every run is in the table)")
        viz.plot_run_curves({label: pd.concat(curves[label], ignore_index=True)
                             for label in shown},
                            paper_lines=paper_lines, suptitle=title)
        plt.show()
    return found


def plot_curves(runs: dict, paper_lines: dict | None = None, suptitle: str | None = None) -> None:
    """Validation and test accuracy per epoch of ``{label: (history, result)}``, shown."""
    import matplotlib.pyplot as plt

    viz.plot_run_curves({label: h for label, (h, _) in runs.items()}, paper_lines, suptitle)
    plt.show()
