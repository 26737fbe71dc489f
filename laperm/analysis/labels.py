"""Short labels a reader can read: run names, durations, percentages.

A run's folder name (:func:`laperm.reproduce.run_name`) says everything that tells it apart,
in a form made for file systems: ``conv2_laperm_s0_e10_cifar_standardize_bfloat16_fused``.
Tables and legends of the section pages show :func:`short_run_label` instead
(``"Conv2 LaPerm s0 (10 ep., standardised input, bf16)"``); the full names stay on the page
of all records.  Pure Python: no import of the training code.
"""

from __future__ import annotations

import re

#: How the first token of an experiment name is written for a reader.
_MODELS = {"conv": "Conv", "resnet": "ResNet", "vgg": "VGG", "f": "F"}
#: Name parts after the seed (:func:`laperm.reproduce.run_name`) and what a reader is told.
#: ``fused`` (TensorFlow's fused kernels: the same arithmetic, faster) says nothing about
#: the result and is left out.
_SUFFIXES = {"cifar_standardize": "standardised input", "bfloat16": "bf16",
             "mixed_bfloat16": "bf16", "fused": "", "h200": "H200", "h100": "H100"}
_RUN = re.compile(r"^(?P<experiment>.+?)_(?P<optimizer>laperm|adam)_s(?P<seed>\d+)"
                  r"(?P<rest>(?:_.+)?)$")


def experiment_label(experiment: str) -> str:
    """``"conv7_k20"`` -> ``"Conv7 k=20"``, ``"resnet50_p30"`` -> ``"ResNet50 p=30%"``,
    ``"f2_per_unit"`` -> ``"F2 per-unit"``; a name of another form is returned as it is."""
    tokens = experiment.split("_")
    head = re.fullmatch(r"([a-z]+)(\d+)", tokens[0])
    if head is None or head.group(1) not in _MODELS:
        return experiment
    out = [_MODELS[head.group(1)] + head.group(2)]
    rest = tokens[1:]
    while rest:
        token = rest.pop(0)
        if re.fullmatch(r"k\d+", token):
            out.append(f"k={token[1:]}")
        elif re.fullmatch(r"p\d+", token):
            out.append(f"p={token[1:]}%")
        elif rest and token == "per":
            out.append(f"per-{rest.pop(0)}")
        else:
            out.append(token)
    return " ".join(out)


def short_run_label(name: str) -> str:
    """A run's folder name as a reader reads it; names of another form are returned unchanged.

    ``"conv2_laperm_s0_e10_cifar_standardize_bfloat16_fused"`` ->
    ``"Conv2 LaPerm s0 (10 ep., standardised input, bf16)"``;
    ``"conv4_adam_s0_e2_f25"`` -> ``"Conv4 Adam s0 (2 ep., 25% data)"``;
    ``"conv7_laperm_s1"`` -> ``"Conv7 LaPerm s1"``.  A book run's folder
    (``<name>-<config hash>``) loses its hash.

    Args:
        name: ``<experiment>_<laperm|adam>_s<seed>[_e<epochs>][_f<% of the training set>]
            [_<preprocessing>][_<precision>][_<kernels>][_<device>]``.
    """
    match = _RUN.match(name.split("-")[0])
    if match is None:
        return name
    label = (f"{experiment_label(match['experiment'])} "
             f"{'LaPerm' if match['optimizer'] == 'laperm' else 'Adam'} s{match['seed']}")
    rest = match["rest"].lstrip("_")
    for long, short in _SUFFIXES.items():  # multi-token suffixes first
        if "_" in long:
            rest = re.sub(rf"(^|_){long}(?=_|$)", rf"\1{long.replace('_', '~')}", rest)
    parts = []
    for token in filter(None, rest.split("_")):
        token = token.replace("~", "_")
        if re.fullmatch(r"e\d+", token):
            parts.append(f"{token[1:]} ep.")
        elif re.fullmatch(r"f\d+(\.\d+)?", token):
            parts.append(f"{token[1:]}% data")
        elif token in _SUFFIXES:
            if _SUFFIXES[token]:
                parts.append(_SUFFIXES[token])
        else:
            parts.append(token)
    return label + (f" ({', '.join(parts)})" if parts else "")


def duration(seconds) -> str:
    """A wall time as a reader reads it: ``"45 s"``, ``"12 min"``, ``"13.6 h"``; ``"—"``
    when unknown."""
    if seconds is None or seconds != seconds:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def percent(value, decimals: int = 2) -> str:
    """A share as a percentage with ``decimals`` decimals (``0.601`` -> ``"60.10%"``);
    ``"—"`` when unknown."""
    if value is None or value != value:
        return "—"
    return f"{100 * float(value):.{decimals}f}%"


def short_run_labels(names) -> list[str]:
    """:func:`short_run_label` of each name; a name whose short label another name shares
    keeps its full form, so that no two rows of a table read the same."""
    names = list(names)
    short = [short_run_label(n) for n in names]
    return [s if short.count(s) == 1 else n for n, s in zip(names, short)]


def settings_label(variant: str) -> str:
    """How a run departs from its paper experiment (:func:`laperm.analysis.records.variant`,
    e.g. ``"cifar_standardize, mixed_bfloat16"``) in words: ``"standardised input, bf16"``;
    ``"paper's"`` for the paper's settings."""
    if not variant:
        return "paper's"
    return ", ".join(_SUFFIXES.get(part.strip()) or part.strip() for part in variant.split(","))
