"""Helpers used by the book's notebooks: profiles, banners, run folders, status.

Every notebook of ``book/`` starts with a papermill ``parameters`` cell
(``profile = "cpu"`` and every other knob ``= None``), then calls
:func:`setup`, which fills the ``None`` knobs from the chosen profile, shows the
scale banner, and starts the section's clock.  The last cell calls
:func:`finish`, which writes the section's status record (profile, parameters,
hardware, wall time, date, commit) read by the status page.

Profiles:

* ``smoke``: CI; the whole book in <= 10 minutes on 2 CPU cores;
* ``cpu``: the default main job, meaningful MNIST results, reduced CIFAR-10;
  the whole book in <= 45 minutes on 2 CPU cores;
* ``paper``: the paper's settings, for a GPU.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PROFILE_NAMES = ("smoke", "cpu", "paper")

PROFILE_DESCRIPTIONS = {
    "smoke": "smoke test (CI): tiny runs that only prove the pipeline works",
    "cpu": "CPU profile: reduced runs that fit a 2-core machine",
    "paper": "paper profile: the paper's settings (needs a GPU for CIFAR-10)",
}

#: What the whole book may take per profile on 2 CPU cores (minutes; the
#: paper profile is meant for a GPU and has no budget).
BOOK_BUDGET_MIN = {"smoke": 10, "cpu": 45, "paper": None}

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_dir() -> Path:
    """Where executions keep their runs and status (``$LAPERM_BUILD_DIR`` or ``_build``)."""
    return Path(os.environ.get("LAPERM_BUILD_DIR", REPO_ROOT / "_build"))


def status_dir() -> Path:
    return build_dir() / "status"


def results_dir() -> Path:
    """Committed result records of long runs (issue: reproduce the paper)."""
    return REPO_ROOT / "results"


def reference_dir(explicit=None) -> Path | None:
    """The authors' published checkpoints (Keras 2 ``.h5`` weight files), if present.

    Looks at ``explicit``, then ``$LAPERM_REFERENCE_DIR``, then
    ``../shared/reference/pretrained`` beside the repository; the first folder
    holding ``.h5`` files wins.  None when there is none (pages then say where
    to get the files).
    """
    for candidate in (explicit, os.environ.get("LAPERM_REFERENCE_DIR"),
                      REPO_ROOT.parent / "shared" / "reference" / "pretrained"):
        if candidate and Path(candidate).is_dir() and any(Path(candidate).glob("*.h5")):
            return Path(candidate)
    return None


# --------------------------------------------------------------------------
# The sections' parameters ("knobs"): what each accepts
# --------------------------------------------------------------------------

#: Accepted spellings of a boolean parameter (case-insensitive).
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_NONE_WORDS = ("none", "null", "~")


def _cifar_resnet(name: str) -> str | None:
    """``conv7``, ``resnet50`` or another CIFAR ResNet ``resnet<6n+2>``; else an error text."""
    match = re.fullmatch(r"resnet(\d+)", name)
    if name == "conv7" or (match and int(match[1]) >= 8 and (int(match[1]) - 2) % 6 == 0):
        return None
    return "conv7, resnet50 or another CIFAR ResNet of depth 6n + 2 (e.g. resnet20)"


@dataclass(frozen=True)
class Knob:
    """What one section parameter accepts; checked before a notebook runs.

    Attributes:
        kind: ``int``, ``float``, ``bool`` or ``str`` (of one value, or of each
            element when ``is_list``).
        low, high: inclusive bounds (numbers); ``open_low`` excludes ``low``.
        is_list: a list of values; one value given alone becomes a
            one-element list.
        choices: the accepted strings.
        check: ``check(value) -> None`` or the text of what is accepted.
        note: what the value means, shown in errors.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    is_list: bool = False
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    note: str = ""

    def describe(self) -> str:
        """What the parameter accepts, in words (``a whole number >= 1``)."""
        many = self.is_list
        if self.kind is bool:
            text = "true or false (or yes/no, 1/0)"
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.kind is str:
            text = "texts" if many else "a text"
        else:
            text = ("whole numbers" if many else "a whole number") if self.kind is int else (
                "numbers" if many else "a number")
            high = self.high if self.high is not None and self.high < 2**31 - 1 else None
            if self.low is not None and high is not None:
                text += f" in {'(' if self.open_low else '['}{self.low:g}, {high:g}]"
            elif self.low is not None:
                text += f" {'>' if self.open_low else '>='} {self.low:g}"
        if many:
            text = (f"a list of {text}" if not (self.kind is bool or self.choices)
                    else f"a list of values, each {text}")
            text += " (e.g. [1, 2]; one value alone is a list of one)"
        return text


def _positive(note=""):
    return Knob(int, low=1, high=2**31 - 1, note=note)


#: Every parameter of the book's sections (same name, same meaning in every
#: section).  ``None`` always means "the profile's value".
KNOBS: dict[str, Knob] = {
    # training length and data
    "epochs": _positive(),
    "f1_epochs": _positive(),
    "f2_epochs": _positive(),
    "conv7_epochs": Knob(int, low=0, high=2**31 - 1, note="0 skips the Conv7 part"),
    "train_fraction": Knob(float, low=0, high=1, open_low=True,
                           note="share of the training images"),
    "train_images": _positive(),
    "f2_train_images": _positive(),
    "conv7_train_images": Knob(int, low=0, high=2**31 - 1,
                               note="used only when conv7_epochs >= 1"),
    "test_images": _positive(),
    "mnist_test_images": _positive(),
    "cifar_test_images": _positive(),
    "validation_size": _positive("training images held out to choose the best epoch"),
    "probe_size": _positive(),
    # LaPerm and the optimizer
    "sync_period": _positive("LaPerm's k"),
    "sync_periods": Knob(int, low=1, high=2**31 - 1, is_list=True, note="LaPerm's k values"),
    "sawtooth_k": _positive("LaPerm's k"),
    "sawtooth_steps": _positive(),
    "learning_rate": Knob(float, low=0, high=1e3, open_low=True),
    "pruned_percents": Knob(int, low=0, high=99, is_list=True,
                            note="percent of kernel weights pruned at initialisation"),
    "adam_baseline": Knob(bool, note="also train the plain-Adam baseline"),
    # models and inputs
    "models": Knob(str, is_list=True, choices=("conv2", "conv4", "conv13")),
    "model": Knob(str, check=_cifar_resnet),
    "preprocessing": Knob(str, choices=("cifar_raw", "cifar_standardize")),
    # measurements and display
    "n_values": Knob(int, low=2, high=10_000, note="weights of the toy vector"),
    "n_checkpoints": _positive(),
    "max_frames": _positive(),
    "imagenet": Knob(bool, note="download the ImageNet VGG16 weights (about 530 MB)"),
    "imagenet_vectors": _positive("output units measured per layer"),
    "control_seeds": Knob(int, low=0, high=2**32 - 1, is_list=True),
    "seed": Knob(int, low=0, high=2**32 - 1),
    "reference_dir": Knob(str, note="folder holding the authors' .h5 files"),
    "runs_profile": Knob(str, choices=PROFILE_NAMES),
    "metric": Knob(str, choices=("test_accuracy_at_best_val", "final_test_accuracy",
                                 "best_test_accuracy_any_epoch", "best_val_accuracy")),
    "show_versions": Knob(bool),
}


def _scalar(knob: Knob, value):
    """One value converted to the knob's kind; raises ValueError (without a message)."""
    if knob.kind is bool:
        if isinstance(value, bool):
            return value
        if type(value).__name__ == "bool_":  # numpy
            return bool(value)
        if isinstance(value, numbers.Integral) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.strip().lower()]
        raise ValueError
    if knob.kind is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ValueError
        text = value.strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        if not text or (knob.choices and text not in knob.choices) or (
                knob.check and knob.check(text)):
            raise ValueError
        return text
    # numbers; a bool is not a number here
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if knob.kind is int else float(value)
    elif knob.kind is int:
        if not isinstance(value, numbers.Integral):
            raise ValueError
        value = int(value)
    elif isinstance(value, numbers.Real):
        value = float(value)
    else:
        raise ValueError
    if knob.kind is float and not math.isfinite(value):
        raise ValueError
    if knob.low is not None and (value <= knob.low if knob.open_low else value < knob.low):
        raise ValueError
    if knob.high is not None and value > knob.high:
        raise ValueError
    return value


def check_parameter(name: str, value, section: str | None = None):
    """A parameter value checked against :data:`KNOBS` and converted to its type.

    Strings (as typed on the command line) are converted: ``"5"`` -> 5,
    ``"yes"`` -> True, ``"20"`` for a list -> ``[20]``, ``"[1, 2]"`` or
    ``"1,2"`` -> ``[1, 2]``.  ``None`` (or ``"none"``) stays None: the
    profile's value.  A parameter not in :data:`KNOBS` is returned unchanged.

    Raises:
        ValueError: a value of the wrong type or out of range; the one-line
            message names the parameter, what it accepts and what was given.
    """
    knob = KNOBS.get(name)
    label = f"parameter {name}" + (f" of section {section!r}" if section else "")
    if knob is None or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
        return None

    def bad(given, element=""):
        check = knob.check(given) if knob.check and isinstance(given, str) else None
        wanted = check or knob.describe()
        note = f" ({name}: {knob.note})" if knob.note else ""
        return ValueError(f"{label}: expected {wanted}, got {given!r}{element}{note}")

    if not knob.is_list:
        try:
            return _scalar(knob, value)
        except (ValueError, TypeError, OverflowError):
            raise bad(value) from None
    items = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import yaml

            try:
                items = yaml.safe_load(text)
            except yaml.YAMLError:
                raise bad(value) from None
            if not isinstance(items, list):
                raise bad(value)
        else:
            items = [t for t in (part.strip() for part in text.split(",")) if t]
    elif not isinstance(value, (list, tuple)):
        items = [value]
    if not items:
        raise ValueError(f"{label}: expected {knob.describe()}, got an empty list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(_scalar(knob, item))
        except (ValueError, TypeError, OverflowError):
            raise bad(item, f" as element {i + 1} of {len(items)}") from None
    return out


def check_parameters(values: dict, section: str | None = None) -> dict:
    """:func:`check_parameter` for each ``{name: value}``."""
    return {name: check_parameter(name, value, section) for name, value in values.items()}


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

    def __getattr__(self, name):
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(
                f"Section {self.__dict__.get('section')!r} has no parameter {name!r}; "
                f"parameters: {', '.join(self.__dict__.get('params', {}))}"
            ) from None

    def run_dir(self, name: str) -> Path:
        """A folder for one experiment run of this section and profile.

        Runs resume from there, so re-executing a section reuses finished runs.
        """
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
        from laperm import experiment

        runs = {}
        for label, cfg in configs.items():
            self.note_scale(f"{cfg.name}: {cfg.scale_label}")
            runs[label] = experiment.run(cfg, self.run_dir(f"{cfg.name}-{cfg.hash}"),
                                         progress=False)
            result = runs[label][1]
            print(f"{label}: {cfg.scale_label}; test accuracy at the best validation epoch "
                  f"{result['test_accuracy_at_best_val']:.4f}; {result['wall_time_s']:.0f} s")
        return runs


def setup(section: str, profile: str, profiles: dict[str, dict], overrides: dict[str, Any],
          show_banner: bool = True) -> Section:
    """Resolve a notebook's parameters and show its scale banner.

    Args:
        section: the notebook's name.
        profile: the chosen profile name.
        profiles: ``{profile: {parameter: value}}`` defaults, defined in the
            notebook itself so a reader sees them.
        overrides: the notebook's parameters as set in its parameters cell
            (``None`` means "take the profile's value").
        show_banner: display the banner (Markdown) in the notebook.

    Raises:
        ValueError: unknown profile (the message lists the valid ones), a
            parameter missing from the profile table, or a value of the wrong
            type or range (see :data:`KNOBS`).
    """
    if profile not in PROFILE_NAMES:
        raise ValueError(f"Unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}.")
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


def banner_text(sec: Section, scale: str | None = None) -> str:
    """The banner's Markdown: profile, scale and overridden parameters."""
    lines = [f"**Profile `{sec.profile}`** — {PROFILE_DESCRIPTIONS[sec.profile]}."]
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
    """Display the banner in a notebook (printed outside IPython)."""
    text = banner_text(sec, scale)
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover
        print(text)


def finish(sec: Section, extra: dict | None = None) -> dict:
    """Write the section's status record for the status page and return it."""
    from laperm.experiment import environment_info

    env = environment_info()
    record = {
        "section": sec.section,
        "profile": sec.profile,
        "params": sec.params,
        "overridden": sec.overridden,
        "scale_notes": sec.scale_notes,
        "wall_time_s": round(time.perf_counter() - sec.started, 1),
        "started_at": sec.started_at,
        **env,
        **(extra or {}),
    }
    path = status_dir()
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f"{sec.section}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, path / f"{sec.section}.json")
    return record


def load_status() -> list[dict]:
    """Every section's latest status record."""
    path = status_dir()
    if not path.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(path.glob("*.json"))]


_PERCENT_COLUMNS = ("best val acc", "test acc at best val", "final test acc",
                    "best test acc, any epoch", "paper")


def show_table(df) -> None:
    """Display a :func:`laperm.records.results_table` with percentages."""
    from IPython.display import display

    fmt = {c: "{:.2%}" for c in _PERCENT_COLUMNS}
    fmt.update({"p": "{:.0%}", "k": "{:.0f}", "syncs": "{:.0f}", "wall time (s)": "{:.0f}"})
    display(df.style.format({k: v for k, v in fmt.items() if k in df.columns}, na_rep="—"))


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
    from IPython.display import Markdown, display

    from laperm import records, viz
    from laperm.experiment import PAPER_ACCURACY

    found = records.stored_runs(names, root or results_dir())
    if not found:
        display(Markdown(
            "No finished record of these experiments (" + ", ".join(f"`{n}`" for n in names)
            + ") is committed under `results/` yet, so this page only shows the runs "
            "executed above."))
        return found
    paper_names = paper_names or {}
    paper_of = {folder: paper_names.get(r["name"], r["name"]) for folder, (_, r) in found.items()}
    table = records.results_table(found, paper_of)
    results = [r for _, r in found.values()]
    table.insert(1, "seed", [r["config"]["seed"] for r in results])
    table["hardware"] = [f"{(r.get('hardware') or {}).get('accelerator', '?')}, "
                         f"{(r.get('hardware') or {}).get('cpu_count', '?')} CPU cores"
                         for r in results]
    table["date"] = [str(r.get("date", "?"))[:10] for r in results]
    show_table(table)
    # Several seeds of one experiment: mean and standard deviation.
    table["experiment"] = [r["name"].removesuffix("_adam") for r in results]
    groups = table.groupby(["experiment", "optimizer", "scale"], sort=False)
    if groups.size().max() > 1:
        summary = groups["test acc at best val"].agg(["count", "mean", "std"])
        summary.columns = ["seeds", "test acc at best val: mean", "sd"]
        summary["paper"] = groups["paper"].first()
        display(summary.style.format({"test acc at best val: mean": "{:.2%}", "sd": "{:.2%}",
                                      "paper": "{:.2%}"}, na_rep="—"))
    # Curves: the seeds of one experiment and optimizer are averaged (band: sd).
    curves: dict = {}
    for history, result in found.values():
        if history is not None:
            label = (f"{result['name'].removesuffix('_adam')} "
                     f"{'LaPerm' if result['optimizer'] == 'laperm' else 'Adam'}")
            if result["scale"]["is_reduced"]:  # never average over different scales
                label += f" ({result['scale']['label']})"
            curves.setdefault(label, []).append(history)
    if curves:
        import pandas as pd

        paper_lines = {f"paper ({key})": PAPER_ACCURACY[key]
                       for folder, key in paper_of.items()
                       if key in PAPER_ACCURACY and found[folder][1]["optimizer"] == "laperm"}
        viz.plot_run_curves({label: pd.concat(h, ignore_index=True) for label, h in curves.items()},
                            paper_lines=paper_lines,
                            suptitle="stored runs (several seeds: mean, band = standard deviation)")
        plt.show()
    return found
