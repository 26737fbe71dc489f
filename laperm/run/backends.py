"""Which Keras backend a process will use, and whether it is installed.

Keras picks its backend once, when it is first imported: ``$KERAS_BACKEND``,
else the ``"backend"`` of ``keras.json`` in ``$KERAS_HOME`` (default
``~/.keras``), else TensorFlow.  A backend whose package is missing makes
``import keras`` fail deep inside Keras with a traceback; :func:`require_installed`
(called by ``import laperm``) says it in one sentence instead, and a laperm
command (``python -m laperm.reproduce``, ``laperm``) prints that sentence on
one line and exits with code 2.

It also evens out one difference between backends that matters for
reproducible runs (:func:`seed_global_generator`, :func:`global_generator_seeded`):
under torch, a Keras layer created without a seed (the paper models'
``Dropout``) draws from torch's global generator instead of its seed-generator
state variable.

This module imports neither Keras nor any backend at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from typing import Sequence

#: The Python package each Keras backend needs.
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch",
                    "numpy": "numpy", "openvino": "openvino"}

#: What to install for a backend (the laperm extra where there is one).
INSTALL_HINTS = {
    "tensorflow": 'pip install "laperm[cpu]" (TensorFlow for the CPU)',
    "jax": 'pip install "laperm[jax]"',
    "torch": 'pip install "laperm[torch]"',
    "numpy": "pip install numpy",
    "openvino": "pip install openvino",
}


class BackendNotInstalledError(ImportError):
    """The Keras backend this process would use is not installed."""


def _keras_json() -> str:
    """The ``keras.json`` Keras reads (same rule as ``keras.src.backend.config``)."""
    if "KERAS_HOME" in os.environ:
        folder = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(os.path.join(folder, "keras.json"))


def configured_backend() -> tuple[str, str]:
    """The backend ``import keras`` would choose now, and where the choice comes from.

    Returns:
        ``(name, source)``, e.g. ``("jax", "KERAS_BACKEND=jax")``,
        ``("torch", "/home/me/.keras/keras.json")`` or ``("tensorflow", "the
        Keras default")``.
    """
    name, source = "tensorflow", "the Keras default"
    path = _keras_json()
    try:
        with open(path) as f:
            stored = json.load(f).get("backend")
        if stored:
            name, source = str(stored), path
    except (OSError, ValueError, AttributeError):
        pass
    if os.environ.get("KERAS_BACKEND"):
        name = os.environ["KERAS_BACKEND"]
        source = f"KERAS_BACKEND={name}"
    return name, source


def selected_backend() -> tuple[str, str]:
    """The Keras backend of this process and where the choice came from.

    Returns:
        Keras's own answer once Keras is imported (``keras.backend.backend()``),
        else :func:`configured_backend`.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend(), "keras.backend.backend()"
    return configured_backend()


def is_installed(package: str) -> bool:
    """True when ``package`` can be imported (without importing it)."""
    if package in sys.modules:
        return sys.modules[package] is not None
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def installed_backends() -> list[str]:
    """The Keras backends whose package is installed, in a fixed order."""
    return [name for name, package in BACKEND_PACKAGES.items()
            if name != "numpy" and is_installed(package)]


def missing_backend_message() -> str | None:
    """One sentence saying the selected backend is missing, or None when it is installed."""
    name, source = selected_backend()
    if name not in BACKEND_PACKAGES:
        return (f"unknown Keras backend {name!r} ({source}); choose one of "
                f"{', '.join(BACKEND_PACKAGES)} with KERAS_BACKEND")
    if is_installed(BACKEND_PACKAGES[name]):
        return None
    others = [b for b in installed_backends() if b != name]
    choose = (f", or choose an installed one: {' or '.join(f'KERAS_BACKEND={b}' for b in others)}"
              if others else "")
    return (f"the Keras backend {name!r} ({source}) is not installed: "
            f"{INSTALL_HINTS[name]}{choose}")


def _started_as_laperm_command() -> bool:
    """True while ``python -m laperm.<module>`` or the ``laperm`` script starts.

    While ``python -m`` imports the parent packages of the module it runs,
    ``sys.argv[0]`` is ``"-m"`` (documented in the Python command-line docs).
    """
    first = sys.argv[0] if sys.argv else ""
    return first == "-m" or os.path.basename(first) == "laperm"


def require_installed() -> None:
    """Raise :class:`BackendNotInstalledError` when the selected backend is missing.

    Started as a laperm command, print the sentence on one line of stderr and
    exit with code 2 instead (no traceback).

    Raises:
        BackendNotInstalledError: the backend's package cannot be imported (or
            the backend name is unknown).
    """
    message = missing_backend_message()
    if message is None:
        return
    if _started_as_laperm_command():
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)
    raise BackendNotInstalledError(message)


def has_tensorflow() -> bool:
    """True when TensorFlow can be imported (it is not imported here)."""
    return is_installed("tensorflow")


def _torch_backend() -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and keras.backend.backend() == "torch"


def _seed_of(words: Sequence[int]) -> int:
    import numpy as np

    return int(np.random.SeedSequence([int(w) % 2**32 for w in words]).generate_state(1)[0])


def seed_generator_states(model) -> list:
    """The ``seed_generator_state`` variables of a model's random layers (dropout).

    Keras does not save them with a model; the training loop and the BatchNorm
    re-estimation set them from seeds of their own, so that the draws are a
    function of those seeds in every process.
    """
    return [v for v in model.variables if v.name == "seed_generator_state"]


def seed_global_generator(words: Sequence[int]) -> None:
    """Seed the backend's global generator from ``words`` (torch only; a no-op elsewhere).

    Under torch, Keras layers without a seed of their own (``Dropout(0.4)``)
    draw from ``torch``'s global generator, not from their
    ``seed_generator_state`` variable: seeding both makes their draws a
    function of ``words`` on every backend.  TensorFlow and JAX draw only from
    the state variables, so nothing changes there.

    Args:
        words: integers, e.g. ``(seed, epoch, tag)``.
    """
    if _torch_backend():
        import torch

        torch.manual_seed(_seed_of(words))


@contextlib.contextmanager
def global_generator_seeded(words: Sequence[int]):
    """A context seeded by :func:`seed_global_generator`; the generator's state comes back on exit.

    Args:
        words: integers the seed is made from.
    """
    if not _torch_backend():
        yield
        return
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(_seed_of(words))
        yield
