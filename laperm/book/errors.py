"""What the book's pipeline reports to the ``laperm`` command."""

from __future__ import annotations

import importlib.util

#: The modules of the ``book`` extra each command needs.
EXTRA_MODULES = {
    "sections": ("jupytext", "yaml"),
    "run": ("jupytext", "papermill", "nbformat", "yaml"),
    "book": ("jupytext", "papermill", "nbformat", "yaml", "jupyter_book"),
    "build": ("jupytext", "nbformat", "yaml", "jupyter_book"),
    "notebook": ("jupytext", "nbformat"),
}


class UsageError(Exception):
    """A mistake in the command line (unknown section, profile or parameter)."""


class SectionFailed(Exception):
    """A section's notebook raised while executing, or the site build failed."""


def missing_extra(command: str) -> str | None:
    """The one-line message when a module of the ``book`` extra is missing, else None."""
    missing = []
    for module in EXTRA_MODULES.get(command, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append({"yaml": "pyyaml", "jupyter_book": "jupyter-book"}.get(module, module))
    if not missing:
        return None
    return (f"`laperm {command}` needs the book extra ({', '.join(missing)} not installed): "
            'pip install "laperm[book]"')
