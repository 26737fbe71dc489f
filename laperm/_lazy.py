"""Submodules reached as attributes of their package, imported on first use.

``laperm.analysis.records`` works right after ``import laperm`` without the
package importing all its modules up front (``import laperm`` without Keras
must not import the Keras side).
"""

from __future__ import annotations

import importlib
from typing import Callable


def submodule_getattr(package: str, submodules: tuple[str, ...]) -> Callable:
    """A module-level ``__getattr__`` for ``package`` that imports ``submodules`` lazily."""

    def __getattr__(name):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
