"""Cell-building helpers shared by the book's notebook generators.

The generators (``make_notebooks_a.py``: sections 2, 3, 4, 6;
``make_notebooks_b.py``: Section 5) write the source notebooks of ``book/``
without outputs; the book executes them with papermill.  Every notebook
follows one contract: a ``parameters`` cell (``profile = "cpu"``, every other
knob ``None``), a hidden start-up cell, a visible ``PROFILES`` table with
``book.setup(...)``, calls into :mod:`laperm`, and ``book.finish(sec)`` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BOOK = Path(__file__).resolve().parents[1]


def md(text: str):
    """A Markdown cell."""
    return new_markdown_cell(text.strip("\n"))


def code(src: str, *tags: str):
    """A code cell with optional tags (``remove-cell``, ``hide-input``, ...)."""
    cell = new_code_cell(src.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def params(*names: str, extra: str = ""):
    """The papermill ``parameters`` cell: ``profile`` and every knob ``= None``."""
    lines = ['profile = "cpu"  # "smoke", "cpu" or "paper"']
    lines += [f"{n} = None" for n in names]
    if extra:
        lines.append(extra)
    return code("\n".join(lines), "parameters")


def setup_cell(section: str, profiles: str, names: tuple[str, ...]):
    """The visible ``PROFILES`` table and ``sec = book.setup(...)``."""
    overrides = ",\n".join(f"    {n}={n}" for n in names)
    return code(
        f"PROFILES = {profiles.strip()}\n\n"
        "from laperm import book\n"
        f'sec = book.setup("{section}", profile, PROFILES, dict(\n{overrides},\n))'
    )


QUIET = r'''
# Start TensorFlow quietly; this cell is not shown in the book.
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=UserWarning)
try:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
except ImportError:
    pass
import keras
'''


def notebook(cells, after_setup=None) -> nbformat.NotebookNode:
    """Assemble a notebook.

    A hidden start-up cell goes right after the parameters cell; ``after_setup``
    (a cell) right after the ``book.setup(...)`` cell.  Cell ids are stable, so
    regenerating a notebook gives no spurious diffs.
    """
    cells = list(cells)
    at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    cells.insert(at + 1, code(QUIET, "remove-cell"))
    if after_setup is not None:
        setup_at = next(i for i, c in enumerate(cells) if "book.setup(" in c.source)
        cells.insert(setup_at + 1, after_setup)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_notebooks(builders: dict[str, Callable[[], nbformat.NotebookNode]],
                    names: list[str] | None = None) -> int:
    """Build, validate and write ``book/<name>.ipynb`` for the chosen names (default: all)."""
    unknown = sorted(set(names or ()) - set(builders))
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; valid: {', '.join(builders)}")
    for name in names or list(builders):
        nb = builders[name]()
        nbformat.validate(nb)
        path = BOOK / f"{name}.ipynb"
        nbformat.write(nb, path)
        print(f"wrote {path.relative_to(BOOK.parent)}")
    return 0
