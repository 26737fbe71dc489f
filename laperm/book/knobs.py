"""The book's profiles and the parameters ("knobs") its sections accept.

A section's parameters are set in its papermill ``parameters`` cell (``None``
means "the profile's value"); each name has one meaning in every section and
a declared type and range (:data:`KNOBS`), checked before a notebook runs
(``laperm run -p NAME VALUE``) and again by :func:`laperm.book.setup`.

Profiles:

* ``smoke``: CI; the whole book in <= 10 minutes on 2 CPU cores;
* ``cpu``: the default main job, meaningful MNIST results, reduced CIFAR-10;
  the whole book in <= 45 minutes on 2 CPU cores;
* ``paper``: the paper's settings, for a GPU.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from laperm.book.errors import UsageError
from laperm.config import PREPROCESSINGS
from laperm.paper import EXPERIMENTS, TABLE

PROFILE_NAMES = ("smoke", "cpu", "paper")

PROFILE_DESCRIPTIONS = {
    "smoke": "smoke test (CI): tiny runs that only prove the pipeline works",
    "cpu": "CPU profile: runs sized for a 2-core machine (the paper's settings where they fit)",
    "paper": "paper profile: the paper's settings (needs a GPU for CIFAR-10)",
}

def profiles_table():
    """The profiles and what each is for (:data:`PROFILE_DESCRIPTIONS`), indexed by profile."""
    import pandas as pd

    return pd.DataFrame([{"profile": p, "what it is for": d}
                         for p, d in PROFILE_DESCRIPTIONS.items()]).set_index("profile")


#: What the whole book may take per profile on 2 CPU cores (minutes; the
#: paper profile is meant for a GPU and has no budget).
BOOK_BUDGET_MIN = {"smoke": 10, "cpu": 45, "paper": None}

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


#: The CIFAR-10 convolutional rows of the paper's table (Section 5.2): the ``models`` knob.
CIFAR_CONVS = tuple(row.experiment for row in TABLE
                    if row.dataset == "cifar10" and EXPERIMENTS[row.experiment].model.startswith("conv"))
#: Their input preprocessings (:data:`laperm.config.PREPROCESSINGS`): the ``preprocessing`` knob.
CIFAR_CONV_INPUTS = tuple(name for name in PREPROCESSINGS if name.startswith("cifar_"))

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
    "models": Knob(str, is_list=True, choices=CIFAR_CONVS),
    "model": Knob(str, check=_cifar_resnet),
    "preprocessing": Knob(str, choices=CIFAR_CONV_INPUTS),
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
    # the authors' code beside ours
    "training_models": Knob(str, is_list=True, choices=("f1", "f2", "conv7"),
                            note="models trained side by side with the authors' loop"),
    "syncs": _positive("syncs compared"),
    "rerun_distribution": Knob(bool, note="train the seed tables again instead of reading "
                                          "the committed record"),
    "seeds": Knob(int, low=0, high=2**32 - 1, is_list=True),
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


def parse_value(text: str) -> Any:
    """A command-line parameter value, typed like papermill ``-p`` / ``-y``.

    ``None``/``null`` -> None, ``True``/``False`` (any case) -> bool, integers,
    floats (``1e-3`` too), ``[..]``/``{..}`` -> YAML list/dict, anything else
    stays a string (quote it, e.g. ``"'5'"``, to force a string).
    """
    if not isinstance(text, str):
        return text
    s = text.strip()
    low = s.lower()
    if low in ("none", "null", "~"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    if s[:1] in "[{\"'":
        import yaml

        try:
            return yaml.safe_load(s)
        except yaml.YAMLError as exc:
            raise UsageError(f"cannot parse parameter value {text!r}: {exc}".splitlines()[0]) from None
    return text


def typed_overrides(overrides: dict, section: str | None = None) -> dict:
    """Parameter values checked and converted to their types.

    A parameter declared in :data:`laperm.book.KNOBS` gets its declared type
    and range (strings as typed on the command line are converted strictly);
    any other is typed by :func:`parse_value`.

    Raises:
        UsageError: a value of the wrong type or range (one line: the
            parameter, what it accepts, what was given).
    """
    out = {}
    for name, value in overrides.items():
        if name not in KNOBS:
            out[name] = parse_value(value)
            continue
        try:
            out[name] = check_parameter(name, value, section)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return out
